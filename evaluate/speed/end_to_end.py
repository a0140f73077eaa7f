"""``actionbench speed --e2e``: the time to learn one action, the paper's recipe against the suite's.

Every input of the estimate is timed on its own: one DreamBooth step, one LoRA step, the
LoRA's fixed cost (the UNet copy with its adapter, and the merge), the generation of one
exemplar's action-different images, and (from the step table) the ADI steps. None is a
difference of timings, so none can come out negative. ``estimate`` turns them and the two
recipes' step counts into seconds; it is a pure function, tested on its own.
"""

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


def suite_recipe() -> dict:
    """The suite's default recipe, from ADI's config: LoRA steps per exemplar, ADI steps."""
    from methods.adi import ADIConfig

    cfg = ADIConfig()
    return {"exemplars": PAPER["exemplars"], "lora_steps": cfg.action_different_steps, "adi_steps": cfg.steps, "adi_variant": "adi"}


def estimate(times: dict, paper: dict = PAPER, suite: dict | None = None) -> dict:
    """Seconds to learn one action by each recipe, from per-step ``times``.

    ``times``: ``dreambooth_step_s``, ``lora_step_s``, ``lora_fixed_s``,
    ``generation_per_exemplar_s`` and ``adi_steps`` (seconds per step by variant; a variant
    not there leaves that recipe's ADI stage unknown: None, counted as 0 in the total).
    """
    suite = suite or suite_recipe()
    for key in ("dreambooth_step_s", "lora_step_s", "lora_fixed_s", "generation_per_exemplar_s"):
        if times[key] < 0:
            raise ValueError(f"{key} is negative ({times[key]})")
    adi = times.get("adi_steps", {})
    generate = times["generation_per_exemplar_s"]

    def adi_s(recipe):
        step = adi.get(recipe["adi_variant"])
        return recipe["adi_steps"] * step if step is not None else None

    out = {
        "paper": {"action_different_s": paper["exemplars"] * (paper["finetune_steps"] * times["dreambooth_step_s"] + generate),
                  "adi_s": adi_s(paper)},
        "suite": {"action_different_s": suite["exemplars"] * (suite["lora_steps"] * times["lora_step_s"] + times["lora_fixed_s"] + generate),
                  "adi_s": adi_s(suite)},
    }
    for r in out.values():
        r["total_s"] = r["action_different_s"] + (r["adi_s"] or 0.0)
    return out


def _random_image(path: Path, size: int, seed: int) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(x).save(path)


def _timed(dev: torch.device, fn, *args):
    """(seconds, result) of one call, synchronised on a GPU."""
    _sync(dev)
    t0 = time.perf_counter()
    out = fn(*args)
    _sync(dev)
    return time.perf_counter() - t0, out


def end_to_end(arch: dict, device: str, setting: Setting, adi_steps: dict, iters: int, gen_steps: int,
               lora_steps: int | None = None, log=print) -> dict:
    """Time to learn one action: the paper's recipe against the suite's default, from step times.

    ``adi_steps``: measured seconds per step by variant (this setting). Measures here:
    one full DreamBooth step (all UNet weights, AdamW, fp32 master weights, autocast to the
    setting's precision), one LoRA step (median of ``iters``) and its fixed cost (copy and
    adapter, merge), and the generation of one exemplar's action-different images
    (``gen_steps`` DDIM steps, scaled to the 50 both recipes use).
    """
    from actionbench.bench import Exemplar
    from methods.adi import DEFAULT_OTHER_PHRASES, ADIConfig
    from methods.adi.action_different import _generate_with, lora_trainer
    from methods.diffusion import noisy_and_target, per_sample_mse
    from methods.tokens import tokenize

    dev = torch.device(device)
    suite = suite_recipe()
    if lora_steps is not None:
        suite["lora_steps"] = lora_steps
    pipe = _prepare(arch, device, setting)
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    size = resolution(pipe)
    cfg = ADIConfig()
    phrases = list(DEFAULT_OTHER_PHRASES)[:4]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "01.png"
        _random_image(image, size, 0)
        ex = Exemplar(image, TEMPLATE)

        def trainer():
            return lora_trainer(pipe, ex, "does a handstand", size, cfg.action_different_lr, cfg.action_different_rank, 0)

        trainer()[0].merge_and_unload()  # warm: imports, allocator
        setup, (unet, step) = _timed(dev, trainer)
        lora = time_step(step, dev, warmup=1, iters=max(1, iters))
        merge, unet = _timed(dev, unet.merge_and_unload)
        lora_step, lora_fixed = lora["median_s"], setup + merge
        log(f"  {setting.label:10s} lora step {lora_step * 1e3:.1f} ms, fixed {lora_fixed:.2f} s")
        prompts = [ex.prompt(p) for p in phrases]
        _generate_with(pipe, unet, prompts, size, 0, 1)  # warm
        seconds, _ = _timed(dev, _generate_with, pipe, unet, prompts, size, 0, gen_steps)
        generate = seconds * 50 / gen_steps
        log(f"  {setting.label:10s} generation of {len(phrases)} images, 50 steps: {generate:.2f} s")
        del unet, step

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

    db = time_step(db_step, dev, warmup=1, iters=max(1, iters))
    log(f"  {setting.label:10s} dreambooth step {db['median_s'] * 1e3:.1f} ms")
    unet = opt = None  # free the copy before the estimate (a del would unbind names db_step closes over)
    times = {"dreambooth_step_s": db["median_s"], "lora_step_s": lora_step, "lora_fixed_s": lora_fixed,
             "generation_per_exemplar_s": generate, "adi_steps": adi_steps}
    est = estimate(times, PAPER, suite)
    n = PAPER["exemplars"]
    return {
        "setting": setting.label, "estimated": True, "dreambooth_step_s": db["median_s"],
        "dreambooth_peak_mem_gb": db.get("peak_mem_gb"), "lora_step_s": lora_step, "lora_fixed_s": lora_fixed,
        "lora_peak_mem_gb": lora.get("peak_mem_gb"), "generation_per_exemplar_s": generate, **est,
        "recipe": {"paper": f"{n} x DreamBooth {PAPER['finetune_steps']} steps + generation + {PAPER['adi_steps']} naive ADI steps",
                   "suite": f"{suite['exemplars']} x LoRA {suite['lora_steps']} steps + generation + {suite['adi_steps']} fused ADI steps"},
    }
