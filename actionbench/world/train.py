"""Train the ActionWorld text-to-image model from scratch: VAE, then UNet + text encoder.

One command (``actionbench world train``) runs three resumable stages in ``--out``:

1. ``vae``: the autoencoder on fresh renders (L1 + MSE reconstruction, tiny KL); saved as
   ``vae.safetensors``; the latent scale (``scaling_factor``) is set so latents have unit std.
2. ``data``: a fixed set of renders encoded once to latents, with their captions
   (``latents.safetensors`` + ``captions.json``); captions name the action except for the
   world's *unnamed* actions (``world.yaml``), whose captions leave the action out.
   ``decoder``: the decoder alone trained further on the frozen encoder's latents
   (``vae_decoder.safetensors``); it does not change the latents.
3. ``unet``: the UNet and the text encoder together, epsilon prediction, min-SNR loss
   weighting, captions dropped to "" 10% of the time (classifier-free guidance), an EMA of
   the weights (learning rate constant after warmup, so a run stopped at step N is the
   run of N steps); a checkpoint (``unet.ckpt.safetensors``, weights + optimizer + EMA, step in
   its metadata) is written atomically every ``ckpt_every`` steps and ``--resume`` goes on
   from it. Every step's batch, timesteps and noise come from a generator seeded by
   (seed, step), so a resumed run is the same run. ``log.jsonl`` gets one line per step.

On a GPU (``--device cuda``) the same stages run there (renders are drawn by
``--workers`` processes); ``--time-budget`` ends the UNet stage after that many seconds
with a checkpoint, so a lent machine's minutes are used to the last.

``export`` writes the EMA weights as a diffusers pipeline in fp16 (``save_pretrained``)
into ``actionbench/world/model/``. No pickle anywhere: safetensors and JSON only.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..errors import ActionBenchError
from ..models import WORLD_MODEL_DIR, PipelineSpec, build_pipeline
from .worlds import renderer


def world_spec(world: str = "v2b") -> PipelineSpec:
    """The ActionWorld model's sizes: 64x64 RGB, 4x16x16 latents, SD 2.1's 16 cross-attention layers.

    ``v2b`` (the shipped model): a 64-wide, 3-layer text encoder on CLIP's full vocabulary,
    77 tokens. ``v3``: the same UNet with SD 2.1-base's 1,024-wide text side (16 heads of
    64; one layer, FFN 1,024: ``scripts/world_v3_cost.py``) on the trimmed world tokenizer,
    24 tokens (issue #23 item 4).
    """
    spec = PipelineSpec(
        flavor="sd2", image_size=64, vae_channels=(16, 32, 64), latent_channels=4,
        unet_channels=(32, 64, 96, 128), layers_per_block=2, head_dim=16, norm_groups=8,
        text_width=64, text_layers=3, text_heads=4, text_ffn=256, prediction_type="epsilon",
    )
    if world == "v2b":
        return spec
    if world == "v3":
        return replace(spec, text_width=1024, text_heads=16, text_layers=1, text_ffn=1024, text_vocab="world",
                       text_max_length=24)
    raise ActionBenchError(f"world {world!r}: the world model's sizes are known for 'v2b' and 'v3'")


@dataclass
class TrainConfig:
    out: str = "scratch/world-train"
    seed: int = 0
    steps: int = 6000  # UNet steps
    batch: int = 32
    lr: float = 8e-4
    warmup: int = 200
    ema: float = 0.995
    snr_gamma: float = 5.0
    drop_caption: float = 0.1
    ckpt_every: int = 200
    vae_steps: int = 1000
    vae_batch: int = 16
    vae_lr: float = 2e-3
    init_vae: str | None = None  # start the autoencoder from this diffusers VAE folder (fine-tune) instead of random
    init_unet: str | None = None  # start UNet + text encoder from this pipeline folder (fine-tune) instead of random
    init_partial: bool = False  # init_unet: copy only tensors whose name and shape match, the rest keep their fresh init (init.json)
    kl_weight: float = 1e-6
    n_data: int = 24000
    decoder_steps: int = 600
    decoder_lr: float = 1e-3
    decoder_latent_noise: float = 0.1
    threads: int = 2
    world: str = "v2b"  # the renders trained on: "v2b" (the shipped model's) or "v3" (actionbench.world.worlds)
    spec: dict | None = None  # the model's sizes (asdict(PipelineSpec)); None: world_spec(world)

    def __post_init__(self):
        if self.spec is None:
            self.spec = asdict(world_spec(self.world))


def _as_uint8(images) -> np.ndarray:
    """PIL images -> one uint8 array (N, H, W, 3): what a render worker sends back."""
    return np.stack([np.asarray(im, dtype=np.uint8) for im in images])


def _uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 array (N, H, W, 3) -> float tensor in [-1, 1], shape (N, 3, H, W)."""
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_tensor(images) -> torch.Tensor:
    """PIL images -> float tensor in [-1, 1], shape (N, 3, H, W)."""
    return _uint8_to_tensor(_as_uint8(images))


def random_renders(n: int, rng: np.random.Generator, size: int = 64, world: str = "v2b"):
    """``n`` fresh renders of ``world`` and their (subject, action, context, seed) labels."""
    R = renderer(world)  # noqa: N806
    items = R.sample_triplets(n, rng)
    return [R.render(s, a, c, sd, size) for s, a, c, sd in items], items


def _render_chunk(job: tuple[int, int, int, str]):
    """Renders of one dataset chunk, seeded by (seed, chunk) alone: any worker count gives the same data."""
    seed, chunk, n, world = job
    imgs, items = random_renders(n, np.random.default_rng([seed, 2, chunk]), world=world)
    return _as_uint8(imgs), items


def _model_device(module) -> torch.device:
    return next(module.parameters()).device


def _atomic_save(tensors: dict, path: Path, metadata: dict | None = None):
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _log(path: Path, **row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _spec(cfg: TrainConfig) -> PipelineSpec:
    d = dict(cfg.spec)
    for k in ("vae_channels", "unet_channels"):
        d[k] = tuple(d[k])
    return PipelineSpec(**d)


# --------------------------------------------------------------------------- stage 1: VAE
def _vae_weights(folder: str | Path) -> dict:
    """fp32 weights of a diffusers VAE folder (``.../vae`` or a pipeline folder holding one), or
    of a ``.safetensors`` state dict (a training run's ``vae.safetensors``)."""
    folder = Path(folder)
    if folder.suffix == ".safetensors":
        if not folder.is_file():
            raise FileNotFoundError(f"--init-vae {folder}: no such file")
        return {k: v.float() for k, v in load_file(str(folder)).items()}
    if (folder / "vae").is_dir():
        folder = folder / "vae"
    f = folder / "diffusion_pytorch_model.safetensors"
    if not f.exists():
        raise FileNotFoundError(f"--init-vae {folder}: no diffusion_pytorch_model.safetensors there (give a diffusers VAE folder)")
    return {k: v.float() for k, v in load_file(str(f)).items()}


def train_vae(pipe, cfg: TrainConfig, out: Path):
    """Train the autoencoder on fresh renders; saves ``vae.safetensors`` (skipped if present)."""
    path = out / "vae.safetensors"
    if path.exists():
        pipe.vae.load_state_dict(load_file(str(path)))
        return
    if cfg.init_vae:
        pipe.vae.load_state_dict(_vae_weights(cfg.init_vae))
    vae = pipe.vae.train()
    device = _model_device(vae)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    rng = np.random.default_rng([cfg.seed, 1])
    t0 = time.time()
    for step in range(cfg.vae_steps):
        imgs, _ = random_renders(cfg.vae_batch, rng, world=cfg.world)
        x = to_tensor(imgs).to(device)
        post = vae.encode(x).latent_dist
        z = post.sample(generator=torch.Generator().manual_seed(cfg.seed * 100003 + step))
        rec = vae.decode(z).sample
        l1, mse = (rec - x).abs().mean(), F.mse_loss(rec, x)
        kl = post.kl().mean()
        loss = l1 + mse + cfg.kl_weight * kl
        lr = cfg.vae_lr * min(1.0, (step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg.vae_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _log(out / "vae_log.jsonl", step=step, loss=loss.item(), l1=l1.item(), mse=mse.item(), kl=kl.item(), t=round(time.time() - t0, 2))
    vae.eval()
    _atomic_save(vae.state_dict(), path)


# --------------------------------------------------------------------------- stage 2: data
@torch.no_grad()
def build_dataset(pipe, cfg: TrainConfig, out: Path, workers: int = 1):
    """Render ``n_data`` images (chunks of 256, ``workers`` processes), encode them to scaled
    latents; returns (latents, captions, labels)."""
    lat_path, cap_path = out / "latents.safetensors", out / "captions.json"
    if lat_path.exists() and cap_path.exists():
        meta = json.loads(cap_path.read_text())
        pipe.vae.register_to_config(scaling_factor=meta["scaling_factor"])
        return load_file(str(lat_path))["latents"], meta["captions"], meta["labels"]
    vae = pipe.vae.eval()
    device = _model_device(vae)
    jobs = [(cfg.seed, c, min(256, cfg.n_data - i), cfg.world) for c, i in enumerate(range(0, cfg.n_data, 256))]
    caption = renderer(cfg.world).caption
    lats, caps, labels = [], [], []
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        chunks = pool.imap(_render_chunk, jobs)
    else:
        pool, chunks = None, map(_render_chunk, jobs)
    try:
        from tqdm.auto import tqdm

        for arr, items in tqdm(chunks, total=len(jobs), desc="render + encode", unit="chunk"):
            lats.append(vae.encode(_uint8_to_tensor(arr).to(device)).latent_dist.mean.cpu())
            caps += [caption(s, a, c) for s, a, c, _ in items]
            labels += [[s, a, c, sd] for s, a, c, sd in items]
    finally:
        if pool is not None:
            pool.close()
    latents = torch.cat(lats)
    scale = float(1.0 / latents.std())
    pipe.vae.register_to_config(scaling_factor=scale)
    latents = latents * scale
    _atomic_save({"latents": latents}, lat_path)
    cap_path.write_text(json.dumps({"scaling_factor": scale, "captions": caps, "labels": labels}))
    return latents, caps, labels


# --------------------------------------------------------------------------- stage 2b: decoder refinement
def _decoder_state(vae) -> dict:
    return {**{"decoder." + k: v for k, v in vae.decoder.state_dict().items()},
            **{"post_quant_conv." + k: v for k, v in vae.post_quant_conv.state_dict().items()}}


def decoder_loop(vae, steps: int, batch: int, lr: float, latent_noise: float, seed: int, stream: int, log_path: Path,
                 progress: bool = False, world: str = "v2b"):
    """Train ``vae``'s decoder (and post-quant conv) on its frozen encoder's latents plus a
    little latent noise (the UNet's latents are never exact): L1 + MSE, cosine learning rate.
    Renders come from the generator ``(seed, stream)``, noise from ``(seed, step)``."""
    device = _model_device(vae)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng([seed, stream])
    scale = vae.config.scaling_factor
    vae.eval()
    vae.decoder.train()
    t0 = time.time()
    steps_iter = range(steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc="decoder", unit="step")
    for step in steps_iter:
        imgs, _ = random_renders(batch, rng, world=world)
        x = to_tensor(imgs).to(device)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
            g = torch.Generator().manual_seed(seed * 100019 + step)
            z = z + (latent_noise / scale) * torch.randn(z.shape, generator=g).to(device)
        rec = vae.decode(z).sample
        l1, mse = (rec - x).abs().mean(), F.mse_loss(rec, x)
        loss = l1 + mse
        step_lr = lr * min(1.0, (step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = step_lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _log(log_path, step=step, loss=loss.item(), l1=l1.item(), mse=mse.item(), t=round(time.time() - t0, 2))
    vae.eval()


def refine_decoder(pipe, cfg: TrainConfig, out: Path):
    """Stage 2b: :func:`decoder_loop` for ``decoder_steps``; saves ``vae_decoder.safetensors``.

    The latents do not change, so this stage is independent of the UNet stage (it may run
    beside it) and the result is the same as running it before.
    """
    path = out / "vae_decoder.safetensors"
    vae = pipe.vae
    if path.exists():
        vae.load_state_dict({**vae.state_dict(), **load_file(str(path))})
        return
    if cfg.decoder_steps <= 0:
        return
    decoder_loop(vae, cfg.decoder_steps, cfg.vae_batch, cfg.decoder_lr, cfg.decoder_latent_noise, cfg.seed, 3,
                 out / "decoder_log.jsonl", world=cfg.world)
    _atomic_save(_decoder_state(vae), path)


def refine_exported_decoder(model_dir: str | Path = WORLD_MODEL_DIR, steps: int = 4000, batch: int = 32, lr: float = 1e-3,
                            latent_noise: float = 0.1, seed: int = 0, threads: int = 2, log_dir: str | Path = "scratch/decoder-refine"):
    """Train an exported world pipeline's decoder further and write its VAE back (fp16).

    The encoder is untouched, so the UNet's latent space and everything trained on it
    stay valid: only how latents become pixels gets better. Logs go to ``log_dir``.
    """
    from diffusers import AutoencoderKL

    torch.set_num_threads(threads)
    vae_dir = Path(model_dir) / "vae"
    vae = AutoencoderKL.from_pretrained(str(vae_dir)).float()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "decoder_log.jsonl").unlink(missing_ok=True)
    decoder_loop(vae, steps, batch, lr, latent_noise, seed, 4, log_dir / "decoder_log.jsonl", progress=True)
    vae.to(torch.float16).save_pretrained(str(vae_dir), safe_serialization=True)
    info_path = Path(model_dir) / "actionworld.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.setdefault("decoder_refinements", []).append(
        {"steps": steps, "batch": batch, "lr": lr, "latent_noise": latent_noise, "seed": seed})
    info_path.write_text(json.dumps(info, indent=1))
    return vae_dir


# --------------------------------------------------------------------------- stage 3: UNet + text
def _trainable(pipe):
    return [("unet." + k, p) for k, p in pipe.unet.named_parameters()] + [
        ("text_encoder." + k, p) for k, p in pipe.text_encoder.named_parameters()
    ]


def optimizer_step(opt, loss, params: list, ema_list: list, lr: float, ema_decay: float, step: int) -> None:
    """One optimizer step of the world's training loops (world model and its ControlNet):
    ``lr`` set on every group, gradients clipped to norm 1, then the EMA weights moved
    towards the parameters with the warm-started decay ``min(ema_decay, (1 + step) / (10 + step))``
    (``ema = decay * ema + (1 - decay) * p``; ``ema_decay`` 0 keeps a copy of the weights)."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    decay = min(ema_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(ema_list, params, 1 - decay)


CKPT_NAME = "unet.ckpt.safetensors"  # weights, EMA weights and AdamW moments of the UNet stage


def _save_ckpt(path: Path, step: int, named, opt, ema: dict):
    t = {}
    for i, (k, p) in enumerate(named):
        t["model." + k] = p.detach()
        t["ema." + k] = ema[k]
        st = opt.state.get(p)
        if st:
            t[f"opt.{i}.exp_avg"] = st["exp_avg"]
            t[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"]
    _atomic_save(t, path, metadata={"step": str(step)})


def checkpoint_step(path: str | Path) -> int:
    """The step recorded in a checkpoint file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return int(f.metadata()["step"])


def _load_ckpt(path: Path, named, opt, ema: dict) -> int:
    step = checkpoint_step(path)
    t = load_file(str(path))
    with torch.no_grad():
        for i, (k, p) in enumerate(named):
            p.copy_(t["model." + k])
            ema[k].copy_(t["ema." + k])
            if f"opt.{i}.exp_avg" in t:
                opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": t[f"opt.{i}.exp_avg"].to(p.device),
                                "exp_avg_sq": t[f"opt.{i}.exp_avg_sq"].to(p.device)}
    return step


def _load_unet_and_text_encoder(pipe, folder: str | Path, partial: bool = False) -> dict:
    """Copy a pipeline folder's UNet and text-encoder weights (any dtype) into ``pipe`` (same sizes).

    ``partial``: copy only the UNet tensors whose name and shape match ``pipe``'s; the others
    keep their fresh initialisation (v2b -> v3: the cross-attention keys and values read
    1,024-wide text). The text encoder is copied whole or not at all (a text encoder of other
    sizes starts fresh: a few coincidentally matching tensors would be noise). Returns, per
    module, how many tensors were copied and the names of those left fresh. A UNet that takes
    nothing is an error.
    """
    folder = Path(folder)
    report = {}
    for name, module, file in (("unet", pipe.unet, "diffusion_pytorch_model.safetensors"),
                               ("text_encoder", pipe.text_encoder, "model.safetensors")):
        f = folder / name / file
        if not f.exists():
            raise FileNotFoundError(f"--init-unet {folder}: no {name}/{file} there (give a diffusers pipeline folder)")
        dtype = next(module.parameters()).dtype
        src = {k: v.to(dtype) for k, v in load_file(str(f)).items()}
        if not partial:
            module.load_state_dict(src)
            report[name] = {"copied": len(src), "fresh": []}
            continue
        own = module.state_dict()
        take = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        if name == "text_encoder" and len(take) < len(own):
            take = {}
        if name == "unet" and not take:
            raise ActionBenchError(f"--init-unet {folder}: no UNet tensor matches this model's names and shapes")
        module.load_state_dict({**own, **take})
        report[name] = {"copied": len(take), "fresh": sorted(set(own) - set(take))}
    return report


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def train_unet(pipe, latents: torch.Tensor, captions: list[str], cfg: TrainConfig, out: Path, resume: bool,
               stop_at: int | None = None, time_budget_s: float | None = None):
    """The diffusion loop (UNet + text encoder); returns (EMA weights by parameter name, steps completed).

    ``stop_at`` ends this run early (after a checkpoint), as an interruption would;
    ``time_budget_s`` does the same after that many seconds. Batches, timesteps and noise
    are drawn on the CPU from (seed, step), whatever the device.
    """
    device = _model_device(pipe.unet)
    ckpt = out / CKPT_NAME
    if cfg.init_unet and not (resume and ckpt.exists()):
        report = _load_unet_and_text_encoder(pipe, cfg.init_unet, partial=cfg.init_partial)
        (out / "init.json").write_text(json.dumps({"init_unet": cfg.init_unet, **report}, indent=1))
    named = _trainable(pipe)
    params = [p for _, p in named]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    ema = {k: p.detach().clone() for k, p in named}
    start = _load_ckpt(ckpt, named, opt, ema) if resume and ckpt.exists() else 0
    if start == 0 and (out / "log.jsonl").exists():
        (out / "log.jsonl").unlink()
    sched = pipe.scheduler
    ac = sched.alphas_cumprod
    snr = (ac / (1 - ac)).to(device)
    latents = latents.to(device)
    ids_all = tokenize(pipe.tokenizer, captions)
    empty = tokenize(pipe.tokenizer, [""])[0]
    ema_list = [ema[k] for k, _ in named]
    pipe.unet.train()
    pipe.text_encoder.train()
    t0 = time.monotonic()
    done = start  # steps completed
    for step in range(start, cfg.steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(latents), (cfg.batch,), generator=g)
        x0 = latents[idx.to(device)]
        ids = ids_all[idx].clone()
        drop = torch.rand(cfg.batch, generator=g) < cfg.drop_caption
        ids[drop] = empty
        ids = ids.to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.batch,), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        xt = sched.add_noise(x0, noise, t)
        hidden = pipe.text_encoder(ids)[0]
        pred = pipe.unet(xt, t, hidden).sample
        w = torch.clamp(snr[t], max=cfg.snr_gamma) / snr[t]  # min-SNR-gamma weighting, epsilon target
        loss = (w * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)  # constant after warmup: stopping at N == training N steps
        optimizer_step(opt, loss, params, ema_list, lr, cfg.ema, step)
        _log(out / "log.jsonl", step=step, loss=round(loss.item(), 5), lr=lr, t=round(time.monotonic() - t0, 2))
        done = step + 1
        out_of_time = time_budget_s is not None and time.monotonic() - t0 >= time_budget_s
        if done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time:
            _save_ckpt(ckpt, done, named, opt, ema)
        if (stop_at is not None and done >= stop_at) or out_of_time:
            break
    return ema, done


# --------------------------------------------------------------------------- export
def export(pipe, ema: dict | None, model_dir: str | Path = WORLD_MODEL_DIR, step: int | None = None, cfg: TrainConfig | None = None):
    """Write the pipeline (EMA weights if given) in fp16 with ``save_pretrained``."""
    import copy

    p = copy.deepcopy(pipe)
    if ema:
        with torch.no_grad():
            for k, v in ema.items():
                mod, name = k.split(".", 1)
                getattr(p, mod).get_parameter(name).copy_(v)
    p.to(torch.float16)
    p.save_pretrained(str(model_dir), safe_serialization=True)
    info = {"step": step, "train_config": asdict(cfg) if cfg else None}
    Path(model_dir, "actionworld.json").write_text(json.dumps(info, indent=1))
    return Path(model_dir)


def pipeline_from_checkpoint(out: str | Path, use_ema: bool = True):
    """Rebuild the pipeline from a training folder (VAE + latest UNet checkpoint); returns (pipe, step, cfg)."""
    out = Path(out)
    cfg = TrainConfig(**json.loads((out / "config.json").read_text()))
    pipe = build_pipeline(_spec(cfg), seed=cfg.seed)
    pipe.vae.load_state_dict(load_file(str(out / "vae.safetensors")))
    meta = json.loads((out / "captions.json").read_text())
    pipe.vae.register_to_config(scaling_factor=meta["scaling_factor"])
    if (out / "vae_decoder.safetensors").exists():
        pipe.vae.load_state_dict({**pipe.vae.state_dict(), **load_file(str(out / "vae_decoder.safetensors"))})
    named = _trainable(pipe)
    t = load_file(str(out / CKPT_NAME))
    step = checkpoint_step(out / CKPT_NAME)
    with torch.no_grad():
        for k, p in named:
            p.copy_(t[("ema." if use_ema else "model.") + k])
    pipe.unet.eval()
    pipe.text_encoder.eval()
    return pipe, step, cfg


def start_run(cfg, resume: bool, device, outputs: tuple[str, ...]):
    """Threads and TF32 for ``device``, the run folder, and the run's config: on ``resume`` the
    saved one (its ``steps`` may be extended), else ``cfg`` with the old ``outputs`` removed.
    Returns (config, folder); the config is written to ``config.json``."""
    torch.set_num_threads(cfg.threads)
    if str(device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if resume and cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        old["steps"] = cfg.steps  # a resumed run may be extended
        old["threads"] = cfg.threads  # and given another core
        cfg = type(cfg)(**old)
    elif not resume:
        for name in outputs:
            (out / name).unlink(missing_ok=True)
    cfg_path.write_text(json.dumps(asdict(cfg), indent=1))
    return cfg, out


def train(cfg: TrainConfig, resume: bool = False, export_dir: str | Path | None = WORLD_MODEL_DIR, stop_at: int | None = None,
          device: str = "cpu", time_budget_s: float | None = None, workers: int = 1):
    """Run (or resume) all stages on ``device``, then export. Returns the export folder (or None).

    ``device``, ``time_budget_s`` and ``workers`` change where and how long, not what is
    trained: they are not part of the saved config.
    """
    cfg, out = start_run(cfg, resume, device, ("vae.safetensors", "latents.safetensors", "captions.json", CKPT_NAME,
                                             "vae_log.jsonl", "vae_decoder.safetensors", "decoder_log.jsonl"))
    torch.manual_seed(cfg.seed)
    pipe = build_pipeline(_spec(cfg), seed=cfg.seed).to(device)
    train_vae(pipe, cfg, out)
    latents, captions, _ = build_dataset(pipe, cfg, out, workers=workers)
    refine_decoder(pipe, cfg, out)
    ema, step = train_unet(pipe, latents, captions, cfg, out, resume, stop_at, time_budget_s)
    if export_dir:
        return export(pipe.to("cpu"), {k: v.cpu() for k, v in ema.items()}, export_dir, step=step, cfg=cfg)
    return None


def plot_loss_curve(out: str | Path, png: str | Path, smooth: int = 100) -> Path:
    """Plot ``log.jsonl``'s loss (raw and moving average) to ``png`` (needs matplotlib)."""
    try:
        import matplotlib
    except ImportError as e:
        from ..errors import ActionBenchError

        raise ActionBenchError("plotting the curve needs matplotlib: pip install matplotlib") from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(Path(out) / "log.jsonl")]
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    k = max(1, min(smooth, len(loss) // 5))
    avg = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(steps, loss, color="0.8", lw=0.6, label="loss per step")
    ax.plot(steps[k - 1 :], avg, color="C0", lw=1.5, label=f"moving average ({k})")
    cfg_path = Path(out) / "config.json"
    batch = json.loads(cfg_path.read_text()).get("batch", "?") if cfg_path.exists() else "?"
    ax.set_xlabel(f"UNet + text-encoder step (batch {batch})")
    ax.set_ylabel("min-SNR-weighted eps MSE")
    ax.set_ylim(0, float(np.percentile(loss, 99)) * 1.05)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png
