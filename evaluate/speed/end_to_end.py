"""``actionbench speed --e2e``: the time to learn one action, the paper's recipe against the suite's, from step times."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch

from evaluate.speed.models import PRECISIONS, TEMPLATE, Setting, _prepare, resolution
from evaluate.speed.timing import _sync, time_step

# The paper's recipe and the suite's default (ADI-SPEC.md, methods/adi/__init__.py).
PAPER = {"exemplars": 10, "finetune_steps": 2000, "adi_steps": 3000, "adi_variant": "adi-naive"}


def _random_image(path: Path, size: int, seed: int) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(x).save(path)


def end_to_end(arch: dict, device: str, setting: Setting, adi_steps: dict, iters: int, gen_steps: int,
               lora_steps: int = 200, log=print) -> dict:
    """Time to learn one action: the paper's recipe against the suite's default, from step times.

    ``adi_steps``: measured seconds per step by variant (this setting). Measures here:
    one full DreamBooth step (all UNet weights, AdamW, fp32 master weights, autocast to the
    setting's precision), one LoRA step and its fixed cost (copy, adapter, merge), and the
    generation of one exemplar's action-different images (``gen_steps`` DDIM steps,
    scaled to the 50 both recipes use).
    """
    from actionbench.bench import Exemplar
    from methods.adi import DEFAULT_OTHER_PHRASES, ADIConfig
    from methods.adi.action_different import _fit_lora, _generate_with
    from methods.diffusion import noisy_and_target, per_sample_mse
    from methods.tokens import tokenize

    dev = torch.device(device)
    pipe = _prepare(arch, device, setting)
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    size = resolution(pipe)
    cfg = ADIConfig()
    phrases = [p for p in DEFAULT_OTHER_PHRASES][:4]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "01.png"
        _random_image(image, size, 0)
        ex = Exemplar(image, TEMPLATE)

        def fit(steps):
            _sync(dev)
            t0 = time.perf_counter()
            unet = _fit_lora(pipe, ex, "does a handstand", size, steps, cfg.action_different_lr, cfg.action_different_rank, 0)
            _sync(dev)
            return time.perf_counter() - t0, unet

        fit(1)  # warm
        short, _ = fit(1)
        long_, unet = fit(1 + max(2, iters * 2))
        lora_step = (long_ - short) / max(2, iters * 2)
        lora_fixed = max(0.0, short - lora_step)
        log(f"  {setting.label:10s} lora step {lora_step * 1e3:.1f} ms, fixed {lora_fixed:.2f} s")
        _generate_with(pipe, unet, [ex.prompt(p) for p in phrases], size, 0, 1)  # warm
        _sync(dev)
        t0 = time.perf_counter()
        _generate_with(pipe, unet, [ex.prompt(p) for p in phrases], size, 0, gen_steps)
        _sync(dev)
        generate = (time.perf_counter() - t0) * 50 / gen_steps
        log(f"  {setting.label:10s} generation of {len(phrases)} images, 50 steps: {generate:.2f} s")
        del unet

    # DreamBooth: the whole UNet trained (paper: lr 1e-6, batch 1), fp32 master weights.
    unet = copy.deepcopy(pipe.unet).float().requires_grad_(True).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-6)
    gen = torch.Generator().manual_seed(0)
    c, s = unet.config.in_channels, unet.config.sample_size
    latents = torch.randn(1, c, s, s, generator=gen).to(dev)
    with torch.no_grad():
        states = pipe.text_encoder(tokenize(pipe.tokenizer, [TEMPLATE.format("does a handstand")], dev))[0].float()
    half = setting.precision != "fp32"

    def db_step():
        noise = torch.randn(latents.shape, generator=gen).to(dev)
        t = torch.randint(0, 1000, (1,), generator=gen).to(dev)
        noisy, target = noisy_and_target(pipe.scheduler, latents, noise, t)
        with torch.autocast(dev.type, dtype=PRECISIONS[setting.precision], enabled=half):
            loss = per_sample_mse(unet(noisy, t, states).sample, target).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    db = time_step(db_step, dev, warmup=1, iters=iters)
    log(f"  {setting.label:10s} dreambooth step {db['median_s'] * 1e3:.1f} ms")
    del unet, opt
    n = PAPER["exemplars"]
    paper_adi = adi_steps.get(PAPER["adi_variant"])
    suite_adi = adi_steps.get("adi")
    paper = {
        "action_different_s": n * (PAPER["finetune_steps"] * db["median_s"] + generate),
        "adi_s": PAPER["adi_steps"] * paper_adi if paper_adi else None,
    }
    suite = {
        "action_different_s": n * (lora_steps * lora_step + lora_fixed + generate),
        "adi_s": cfg.steps * suite_adi if suite_adi else None,
    }
    for r in (paper, suite):
        r["total_s"] = r["action_different_s"] + (r["adi_s"] or 0.0)
    return {
        "setting": setting.label, "estimated": True, "dreambooth_step_s": db["median_s"],
        "dreambooth_peak_mem_gb": db.get("peak_mem_gb"), "lora_step_s": lora_step, "lora_fixed_s": lora_fixed,
        "generation_per_exemplar_s": generate, "paper": paper, "suite": suite,
        "recipe": {"paper": f"{n} x DreamBooth {PAPER['finetune_steps']} steps + generation + {PAPER['adi_steps']} naive ADI steps",
                   "suite": f"{n} x LoRA {lora_steps} steps + generation + {cfg.steps} fused ADI steps"},
    }

