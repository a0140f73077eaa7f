"""The uniform method interface.

Every method is a subclass of :class:`Method` with a dataclass ``Config`` and the same
calls. Learning (``methods.training.learn``) drives any method through:

1. ``setup(work_dir)``: prepare data (cached exemplar latents, ...) and trainable tensors;
2. ``parameters()``: the tensors the optimizer updates (empty: nothing to learn);
3. ``training_step(generator)``: one step's gradients into ``param.grad``; returns logs;
4. ``export()``: the :class:`LearnedAction` to save.

Generation applies a learned file with ``Method.apply(pipe, learned)``, which changes the
pipeline as the method needs (processors, adapters, weights: see :mod:`methods.weights`)
and returns a :class:`PromptEncoder` that turns prompts into the ``prompt_embeds`` the
pipeline takes, and names the pipeline to call and any extra inputs it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from actionbench.bench import ActionSet

from .config import MethodConfig
from .diffusion import encode_images, native_resolution
from .learned import LearnedAction, model_fingerprint
from .tokens import tokenize


class PromptEncoder:
    """Plain text encoding with the pipeline's frozen text encoder."""

    def __init__(self, pipe):
        self.pipe = pipe

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        ids = tokenize(self.pipe.tokenizer, prompts, self.pipe.text_encoder.device)
        return self.pipe.text_encoder(ids)[0]

    def generation_pipeline(self):
        """The pipeline that draws the images: ``pipe`` itself, or one built around it (ControlNet)."""
        return self.pipe

    def pipeline_inputs(self, seeds: list[int]) -> dict:
        """Extra keyword arguments for the call drawing one image per seed (e.g. a pose image each)."""
        return {}


class Method:
    """Base class: a method is its config, its training step and how it is applied."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, pipe, action_set: ActionSet, config: MethodConfig | None = None):
        self.pipe = pipe
        self.action_set = action_set
        self.config = config if config is not None else self.Config()
        self.device = pipe.unet.device
        self.resolution = self.config.resolution or native_resolution(pipe)

    # -- learning ---------------------------------------------------------------
    def setup(self, work_dir: Path) -> None:
        """Prepare data and trainable tensors. ``work_dir`` holds caches."""

    def parameters(self) -> list[torch.Tensor]:
        return []

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def fill(self) -> str:
        """The text that replaces ``{}`` in prompts."""
        raise NotImplementedError

    def learned_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def extra_metadata(self) -> dict:
        return {}

    def export(self) -> LearnedAction:
        from actionbench.models import pipeline_name

        return LearnedAction(
            method=self.name,
            tensors=self.learned_tensors(),
            fill=self.fill(),
            config=self.config.to_dict(),
            base_model=pipeline_name(self.pipe),
            fingerprint=model_fingerprint(self.pipe),
            action=self.action_set.name,
            extra=self.extra_metadata(),
        )

    # -- shared helpers ----------------------------------------------------------
    def exemplar_latents(self) -> torch.Tensor:
        """VAE latents of every exemplar at the training resolution, (N, C, h, w)."""
        images = [e.image() for e in self.action_set.exemplars]
        return encode_images(self.pipe.vae, images, self.resolution).to(self.device)

    def freeze_model(self) -> None:
        """All model weights stay frozen: no gradient buffers are made for them."""
        for module in (self.pipe.unet, self.pipe.text_encoder, self.pipe.vae):
            module.requires_grad_(False)
            module.eval()

    # -- generation --------------------------------------------------------------
    @classmethod
    def apply(cls, pipe, learned: LearnedAction) -> PromptEncoder:
        """Change ``pipe`` as the learned file needs; return its prompt encoder."""
        return PromptEncoder(pipe)
