"""What ActionWorld v3's 1,024-wide text side costs, next to the shipped v2b world (issue #23 item 4).

For the v2b spec (``world_spec()``) and candidate v3 specs (the same UNet with 1,024-wide
cross-attention, a 1,024-wide text encoder on the trimmed world vocabulary, 24-token
context; a few depths / FFN widths), prints parameter counts of the text encoder and the
UNet, their fp16 safetensors file sizes (written to a temporary folder and measured), and
the CPU wall time of

- one training step: forward + backward of text encoder + UNet, batch 32, 4x16x16 latents;
- one identifier-learning step (Textual-Inversion-like): batch 1, every weight frozen, the
  gradient only to the placeholder's input-embedding vector,

each the median of ``--repeats`` runs after one warm-up, on ``--threads`` CPU threads.

    OMP_NUM_THREADS=1 python3 scripts/world_v3_cost.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from actionbench.errors import ActionBenchError
from actionbench.models import WORLD_MODEL_DIR, PipelineSpec, build_pipeline
from actionbench.world.train import world_spec
from methods.tokens import add_placeholder, encode, tokenize

CAPTIONS = ["a panda squats in a park", "an old man raises both arms for cheering on a beach",
            "a woman has hands together in prayer in a city street", "a fox walks at night"]
ID_PROMPT = "a panda <A> in a park"


def v3_spec(text_layers: int, text_ffn: int, text_vocab: str | None = "world") -> PipelineSpec:
    """v2b's sizes with SD 2.1-base's 1,024-wide text side (16 heads of 64) and a 24-token context."""
    return dataclasses.replace(world_spec(), text_width=1024, text_heads=16, text_layers=text_layers, text_ffn=text_ffn,
                               text_vocab=text_vocab, text_max_length=24)


def candidates() -> dict[str, PipelineSpec]:
    """The specs to compare: name -> spec."""
    specs = {"v2b (shipped)": world_spec()}
    for layers in (1, 2):
        for ffn in (1024, 4096):
            specs[f"v3 L{layers} ffn{ffn}"] = v3_spec(layers, ffn)
    return specs


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def fp16_file_mb(module: torch.nn.Module) -> float:
    """Size in MB (10^6 bytes) of ``module``'s weights as an fp16 safetensors file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.safetensors"
        save_file({k: v.detach().half().contiguous() for k, v in module.state_dict().items()}, str(path))
        return path.stat().st_size / 1e6


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    if repeats < 1:
        raise ActionBenchError(f"--repeats must be >= 1, not {repeats}")
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def noisy_batch(pipe, batch: int, seed: int = 0):
    """(noisy latents, timesteps, noise target) for ``batch`` samples at the UNet's latent size."""
    gen = torch.Generator().manual_seed(seed)
    c, s = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    latents, noise = torch.randn(batch, c, s, s, generator=gen), torch.randn(batch, c, s, s, generator=gen)
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch,), generator=gen)
    return pipe.scheduler.add_noise(latents, noise, t), t, noise


def train_step_fn(pipe, batch: int):
    """One full training step's forward + backward (text encoder and UNet both train)."""
    te, unet = pipe.text_encoder.train().requires_grad_(True), pipe.unet.train().requires_grad_(True)
    ids = tokenize(pipe.tokenizer, [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)])
    noisy, t, target = noisy_batch(pipe, batch)
    params = list(te.parameters()) + list(unet.parameters())

    def step():
        for p in params:
            p.grad = None
        loss = F.mse_loss(unet(noisy, t, te(ids)[0]).sample, target)
        loss.backward()

    return step


def identifier_step_fn(pipe):
    """One identifier-learning step: batch 1, frozen model, the gradient to one input-embedding vector."""
    te, unet = pipe.text_encoder.eval().requires_grad_(False), pipe.unet.eval().requires_grad_(False)
    token_id = add_placeholder(pipe.tokenizer, "<A>")
    init = pipe.tokenizer("person", add_special_tokens=False).input_ids
    vector = te.get_input_embeddings().weight[init].mean(0, keepdim=True).clone().requires_grad_(True)
    ids = tokenize(pipe.tokenizer, [ID_PROMPT])
    noisy, t, target = noisy_batch(pipe, 1)

    def step():
        vector.grad = None
        loss = F.mse_loss(unet(noisy, t, encode(te, ids, token_id, vector)).sample, target)
        loss.backward()

    return step


def measure(name: str, spec: PipelineSpec, batch: int, repeats: int, timed: bool = True) -> dict:
    """Counts, fp16 sizes and (``timed``) step times of one spec."""
    pipe = build_pipeline(spec)
    te, unet = pipe.text_encoder, pipe.unet
    row = dict(name=name, vocab=len(pipe.tokenizer), ctx=pipe.tokenizer.model_max_length,
               te_params=n_params(te), emb_params=te.get_input_embeddings().weight.numel(), unet_params=n_params(unet),
               te_mb=fp16_file_mb(te), unet_mb=fp16_file_mb(unet), train_s=float("nan"), id_s=float("nan"))
    if timed:
        row["train_s"] = median_time(train_step_fn(pipe, batch), repeats)
        row["id_s"] = median_time(identifier_step_fn(pipe), repeats)
    return row


def print_table(rows: list[dict], batch: int) -> None:
    head = (f"{'spec':<22}{'vocab':>7}{'ctx':>5}{'TE params':>12}{'(embed)':>12}{'UNet params':>13}"
            f"{'TE MB':>8}{'UNet MB':>9}{f'train b{batch} s':>14}{'id step s':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:<22}{r['vocab']:>7}{r['ctx']:>5}{r['te_params']:>12,}{r['emb_params']:>12,}{r['unet_params']:>13,}"
              f"{r['te_mb']:>8.1f}{r['unet_mb']:>9.1f}{r['train_s']:>14.3f}{r['id_s']:>11.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ActionWorld v3 text-side cost (params, fp16 MB, CPU step times)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure, after one warm-up (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=32, help="training-step batch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
          f"median of {args.repeats} after 1 warm-up")
    t0 = time.perf_counter()
    rows = [measure(name, spec, args.batch, args.repeats) for name, spec in candidates().items()]
    # for scale only (not timed): the same v3 text side on CLIP's full vocabulary
    rows.append(measure("v3 L1 ffn1024 fullCLIP", v3_spec(1, 1024, text_vocab=None), args.batch, args.repeats, timed=False))
    print_table(rows, args.batch)
    committed = [WORLD_MODEL_DIR / "text_encoder" / "model.safetensors", WORLD_MODEL_DIR / "unet" / "diffusion_pytorch_model.safetensors"]
    print("committed v2b files (MB): " + ", ".join(f"{p.parent.name} {p.stat().st_size / 1e6:.1f}" for p in committed if p.exists()))
    print(f"total run time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
