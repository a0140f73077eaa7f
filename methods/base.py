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
from .diffusion import encode_images, native_resolution, predict
from .learned import LearnedAction, model_fingerprint
from .tokens import TextEncoders


class PromptEncoder:
    """Plain text encoding with the pipeline's frozen text encoder(s) (:class:`TextEncoders`)."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.text = TextEncoders(pipe)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompts -> (``prompt_embeds``, pooled embedding or None where the model has none)."""
        return self.text.encode(self.text.tokenize(prompts, self.text.device))

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        return self.encode(prompts)[0]

    def pipeline_embeds(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """The embedding arguments of the pipeline call: the prompts', and the empty prompt's
        as the negative (SDXL: zeros instead where the pipeline's ``force_zeros_for_empty_prompt``
        says its unconditional embedding is zeros, as it does itself)."""
        states, pooled = self.encode(prompts)
        negative, negative_pooled = self.encode([""] * len(prompts))
        out = {"prompt_embeds": states, "negative_prompt_embeds": negative}
        if pooled is not None:
            if self.pipe.config.get("force_zeros_for_empty_prompt", False):
                negative, negative_pooled = torch.zeros_like(negative), torch.zeros_like(negative_pooled)
            out.update(negative_prompt_embeds=negative, pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
        return out

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
        self.text = TextEncoders(pipe)  # one text encoder (SD 1.x/2.x) or two (SDXL)

    # -- learning ---------------------------------------------------------------
    def setup(self, work_dir: Path) -> None:
        """Prepare data and trainable tensors. ``work_dir`` holds caches."""

    def parameters(self) -> list[torch.Tensor]:
        return []

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply this step's gradients (``training_step`` put them in ``.grad``). Every method
        takes the optimizer's plain step; ADI's ``masked_update: discarded`` keeps the masked
        channels out of it."""
        optimizer.step()

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
        for module in (self.pipe.unet, *(te for _, te in self.text.pairs), self.pipe.vae):
            module.requires_grad_(False)
            module.eval()

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, states: torch.Tensor, pooled: torch.Tensor | None = None):
        """The UNet's prediction (SDXL: with the pooled embedding and time ids at the training resolution)."""
        return predict(self.pipe.unet, noisy, t, states, pooled, self.resolution)

    # -- generation --------------------------------------------------------------
    @classmethod
    def apply(cls, pipe, learned: LearnedAction) -> PromptEncoder:
        """Change ``pipe`` as the learned file needs; return its prompt encoder."""
        return PromptEncoder(pipe)
