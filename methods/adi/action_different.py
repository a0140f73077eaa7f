"""Action-different samples x(a', c): the exemplar's person and scene doing other actions.

ADI-SPEC.md section 3. Where the user has such images (``DIR/NN/*.png`` for exemplar
``NN``, or an ``action_different/`` folder inside the action folder) they are used as
they are. Otherwise, for each exemplar, a LoRA (peft) is fitted on that single image
with the exemplar's own prompt, on a throw-away copy of the UNet, and the same prompt is
sampled with other action phrases. The paper fits a full DreamBooth (lr 1e-6, 2000
steps); the LoRA is ours, for speed. Results are cached under the work folder, keyed by
model, action and settings, and reused by later runs; each exemplar's folder is complete
once its ``done.json`` exists, so a killed run resumes at the exemplar it was on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from actionbench.bench import ActionSet, Exemplar, image_files
from actionbench.errors import ActionBenchError

from ..diffusion import encode_images, noisy_and_target, per_sample_mse, predict
from ..tokens import TextEncoders, is_sdxl


def _cache_key(pipe, action_set: ActionSet, settings: dict) -> str:
    from actionbench.models import pipeline_name

    blob = json.dumps({"model": pipeline_name(pipe), "action": str(action_set.root.resolve()), **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def lora_trainer(pipe, exemplar: Exemplar, phrase: str, size: int, lr: float, rank: int, seed: int):
    """A copy of the UNet with a fresh LoRA adapter, and a closure making one training step of
    it on one exemplar image (DreamBooth on one image). ``actionbench speed`` times the step."""
    from peft import LoraConfig, get_peft_model

    unet = copy.deepcopy(pipe.unet)
    unet.requires_grad_(False)
    lora = LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights="gaussian")
    unet = get_peft_model(unet, lora)
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    device = pipe.unet.device
    latents = encode_images(pipe.vae, [exemplar.image()], size).to(device)
    text = TextEncoders(pipe)
    with torch.no_grad():
        states, pooled = text.encode(text.tokenize([exemplar.prompt(phrase)], text.device))  # pooled: SDXL only

    def step() -> None:
        noise = torch.randn(latents.shape, generator=gen).to(device)
        t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (1,), generator=gen).to(device)
        noisy, target = noisy_and_target(pipe.scheduler, latents, noise, t)
        loss = per_sample_mse(predict(unet, noisy, t, states, pooled, size), target).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return unet, step


def _fit_lora(pipe, exemplar: Exemplar, phrase: str, size: int, steps: int, lr: float, rank: int, seed: int):
    """A copy of the UNet with a LoRA fitted to one exemplar image (DreamBooth on one image)."""
    unet, step = lora_trainer(pipe, exemplar, phrase, size, lr, rank, seed)
    for _ in range(steps):
        step()
    return unet.merge_and_unload()


def _generate_with(pipe, unet, prompts: list[str], size: int, seed: int, steps: int):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if is_sdxl(pipe):
        force_zeros = pipe.config.get("force_zeros_for_empty_prompt", True)
        p = StableDiffusionXLPipeline(**{**pipe.components, "unet": unet}, force_zeros_for_empty_prompt=force_zeros, add_watermarker=False)
    else:
        p = StableDiffusionPipeline(**{**pipe.components, "unet": unet}, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(seed)
    return p(prompts, height=size, width=size, num_inference_steps=steps, generator=gen, guidance_scale=7.5).images


def user_action_different(action_set: ActionSet) -> dict[str, list[Path]] | None:
    """The user's action-different images per exemplar key, or None when there are none at all."""
    found = {e.key: action_set.action_different(e) for e in action_set.exemplars}
    if not any(found.values()):
        return None
    missing = [k for k, v in found.items() if not v]
    if missing:
        raise ActionBenchError(
            f"{action_set.action_different_dir}: no action-different images for exemplar(s) {', '.join(missing)} "
            f"(expected {action_set.action_different_dir}/NN/*.png for each NN)"
        )
    return found


def make_action_different(
    pipe,
    action_set: ActionSet,
    work_dir: Path,
    phrases: list[str],
    steps: int,
    lr: float,
    rank: int,
    size: int,
    seed: int = 0,
    sample_steps: int = 50,
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Generate (or reuse from the cache) action-different images for every exemplar."""
    own = action_set.phrase or ""
    others = [p for p in phrases if p != own]
    if not others:
        raise ActionBenchError("no other action phrases to generate action-different images with")
    settings = {"phrases": others, "steps": steps, "lr": lr, "rank": rank, "size": size, "seed": seed, "sample_steps": sample_steps}
    root = Path(work_dir) / "action_different" / _cache_key(pipe, action_set, settings)
    out: dict[str, list[Path]] = {}
    bar = tqdm(action_set.exemplars, desc="action-different images", disable=not progress, unit="exemplar")
    for i, ex in enumerate(bar):
        folder = root / ex.key
        if not (folder / "done.json").exists():
            folder.mkdir(parents=True, exist_ok=True)
            unet = _fit_lora(pipe, ex, own, size, steps, lr, rank, seed + i)
            images = _generate_with(pipe, unet, [ex.prompt(p) for p in others], size, seed + i, sample_steps)
            del unet
            for phrase, im in zip(others, images):
                tmp = folder / f"{phrase.replace(' ', '_')}.tmp.png"
                im.save(tmp)
                os.replace(tmp, folder / f"{phrase.replace(' ', '_')}.png")
            (folder / "done.json").write_text(json.dumps({"exemplar": str(ex.image_path), **settings}))
        out[ex.key] = image_files(folder)
    return out
