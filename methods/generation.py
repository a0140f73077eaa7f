"""Generating with any learned action: every method's file is applied the same way."""

from __future__ import annotations

import torch
from PIL import Image

from actionbench.errors import ActionBenchError

from .diffusion import native_resolution
from .learned import LearnedAction
from .registry import get_method
from .weights import restore


def fill_prompt(template: str, fill: str) -> str:
    """``"A panda {}"`` -> ``"A panda <A>"``; the template must hold ``{}`` once."""
    if template.count("{}") != 1:
        raise ActionBenchError(f"prompt {template!r} must contain '{{}}' exactly once, where the action goes (e.g. \"A panda {{}}\")")
    return template.format(fill)


def generate(
    pipe,
    learned: LearnedAction,
    template: str | list[str],
    n: int = 4,
    seed: int = 0,
    steps: int = 50,
    guidance: float = 7.5,
    size: int | None = None,
    batch: int = 4,
) -> list[Image.Image]:
    """``n`` images of ``template`` with the action; image i uses seed ``seed + i``."""
    templates = [template] * n if isinstance(template, str) else list(template)  # a list: one image per template
    prompts = [fill_prompt(t, learned.fill) for t in templates]
    restore(pipe)  # undo weights an earlier file changed: every file applies to the base model
    learned.check_compatible(pipe)
    encoder = get_method(learned.method).apply(pipe, learned)
    runner = encoder.generation_pipeline()
    size = size or native_resolution(pipe)
    images = []
    for start in range(0, len(prompts), batch):
        k = min(batch, len(prompts) - start)
        seeds = [seed + start + i for i in range(k)]
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        images += runner(
            **encoder.pipeline_embeds(prompts[start : start + k]),  # SDXL: also the pooled embeddings
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generators,
            height=size,
            width=size,
            **encoder.pipeline_inputs(seeds),
        ).images
    return images


def contact_sheet(images: list[Image.Image], columns: int = 4, labels: list[str] | None = None) -> Image.Image:
    """Images in a grid (row-major), for a quick look."""
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, im in enumerate(images):
        sheet.paste(im.resize((w, h)), ((i % columns) * w, (i // columns) * h))
    return sheet
