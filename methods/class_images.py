"""Class images for prior preservation (DreamBooth; Custom Diffusion's regularisation set).

DreamBooth (Ruiz et al., CVPR 2023, eq. 2) keeps the model's prior for the class by also
training on images the *frozen* model made from a class prompt ("a photo of a person").
Custom Diffusion (Kumari et al., CVPR 2023) uses 200 such regularisation images (the
paper retrieves real ones from LAION; offline we generate them, as diffusers' Custom
Diffusion example does with ``--real_prior`` off). The images are made once, before any
weight changes, and cached in the work folder keyed by model, prompt and settings, so
later runs and other methods reuse them; a killed run keeps the images already written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from actionbench.bench import open_image

from .diffusion import encode_images
from .tokens import TextEncoders


def _folder(pipe, work_dir: Path, settings: dict) -> Path:
    from actionbench.models import pipeline_name

    blob = json.dumps({"model": pipeline_name(pipe), **settings}, sort_keys=True)
    return Path(work_dir) / "class_images" / hashlib.sha256(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def class_images(
    pipe, work_dir: Path, prompt: str, count: int, size: int, steps: int = 50, seed: int = 0, batch: int = 4, progress: bool = True
) -> list[Image.Image]:
    """``count`` images of ``prompt`` from the frozen model (image i from seed ``seed + i``), cached."""
    settings = {"prompt": prompt, "size": size, "steps": steps, "seed": seed}
    folder = _folder(pipe, work_dir, settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, sort_keys=True))
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    bar = tqdm(total=len(todo), desc="class images", disable=not progress or not todo, unit="image")
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        generators = [torch.Generator().manual_seed(seed + i) for i in chunk]
        images = pipe([prompt] * len(chunk), height=size, width=size, num_inference_steps=steps, generator=generators).images
        for i, im in zip(chunk, images):
            tmp = paths[i].with_suffix(".tmp.png")
            im.save(tmp)
            os.replace(tmp, paths[i])
        bar.update(len(chunk))
    bar.close()
    return [open_image(p) for p in paths]


@torch.no_grad()
def class_latents_and_states(pipe, work_dir: Path, prompt: str, count: int, size: int, steps: int, seed: int):
    """VAE latents (count, C, h, w) of the class images, the class prompt's encoding (1, 77, d)
    and its pooled embedding (1, p) on SDXL (else None)."""
    device = pipe.unet.device
    images = class_images(pipe, work_dir, prompt, count, size, steps, seed)
    latents = encode_images(pipe.vae, images, size).to(device)
    text = TextEncoders(pipe)
    states, pooled = text.encode(text.tokenize([prompt], text.device))
    return latents, states.to(device), (pooled.to(device) if pooled is not None else None)
