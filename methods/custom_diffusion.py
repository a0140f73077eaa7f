"""Custom Diffusion (Kumari et al., CVPR 2023): cross-attention K/V projections plus a modifier token.

Trains, in every cross-attention layer, the key and value projections that read the text
(``attn2.to_k``, ``attn2.to_v``: the paper's "cross-attention K, V" update, Sec. 3.1),
together with the embedding of a new modifier token written where the action goes
("Young fit woman <new1> in studio"). With prior preservation each step also denoises
regularisation images drawn by the frozen model from ``class_prompt`` (the paper uses
retrieved real images; offline we generate them, see :mod:`methods.class_images`).

Defaults: ADI's supplementary (ADI-SPEC.md, "Baselines"): batch 2, lr 1e-5, 2000 steps,
200 regularisation images. Modifier ``<new1>`` initialised from "ktn" and prior loss
weight 1.0: Custom Diffusion's code (diffusers ``train_custom_diffusion.py``). The learned
file holds the token's vector and the changed projections only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from actionbench.errors import ActionBenchError

from .base import PromptEncoder
from .layerwise import cross_attention_layers
from .learned import LearnedAction
from .registry import register
from .token_method import TokenConfig, TokenMethod
from .weights import WeightMethod, load_weights, prefixed, prior_preservation_loss, unprefixed


@dataclass
class CustomDiffusionConfig(TokenConfig):
    steps: int = 2000  # ADI supplementary
    lr: float = 1e-5  # ADI supplementary
    batch_size: int = 2  # ADI supplementary (exemplars per step; as many class images again)
    token: str = "<new1>"  # Custom Diffusion's modifier token
    initializer: str = "ktn"  # Custom Diffusion's initializer word
    layerwise: bool = False  # one token (the method has no layer-wise variant)
    prior_preservation: bool = True
    num_class_images: int = 200  # ADI supplementary ("+200 regularisation images")
    class_prompt: str = "a photo of a person"  # (ours) the class of ActionBench's exemplars
    prior_loss_weight: float = 1.0  # Custom Diffusion / diffusers default
    class_sample_steps: int = 50  # DDIM steps for the class images (ADI-SPEC.md sampling)

    def __post_init__(self):
        super().__post_init__()
        if self.layerwise:
            raise ActionBenchError("custom-diffusion learns one modifier token: layerwise must be false")
        if self.prior_preservation and self.num_class_images < 1:
            raise ActionBenchError("prior_preservation needs num_class_images >= 1")
        if self.class_sample_steps < 1:
            raise ActionBenchError(f"class_sample_steps must be >= 1 (got {self.class_sample_steps})")


def key_value_names(unet) -> list[str]:
    """Parameter names of every cross-attention layer's key and value projections (weights only:
    SD's projections have no bias)."""
    names = []
    for proc in cross_attention_layers(unet):
        attn = proc[: -len(".processor")]
        names += [f"{attn}.to_k.weight", f"{attn}.to_v.weight"]
    return names


@register
class CustomDiffusion(WeightMethod, TokenMethod):
    name = "custom-diffusion"
    summary = "cross-attention K/V projections + a modifier token (Kumari et al. 2023)"
    Config = CustomDiffusionConfig

    def setup(self, work_dir: Path) -> None:
        self.prepare_weights(work_dir)
        TokenMethod.setup(self, work_dir)
        self.kv_names = key_value_names(self.pipe.unet)
        self.kv = self.train_unet_tensors(self.kv_names)

    def parameters(self) -> list[torch.Tensor]:
        return [self.vectors, *self.kv]

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        b = self.config.batch_size
        idx = torch.randint(0, len(self.action_set), (b,), generator=generator).to(self.device)
        states, pooled = self.encode_text(self.ids[idx], self.vectors.unsqueeze(0).expand(b, -1, -1))
        latents, states, pooled = self.batch_with_class(generator, self.latents[idx], states, pooled)
        losses = self.denoise(generator, latents, states, pooled)
        loss = prior_preservation_loss(losses, b, self.config.prior_loss_weight)
        loss.backward()
        return {"loss": float(loss.detach()), "exemplar_loss": float(losses[:b].detach().mean())}

    def learned_tensors(self) -> dict[str, torch.Tensor]:
        kv = {n: p.detach().cpu() for n, p in zip(self.kv_names, self.kv)}
        return {**TokenMethod.learned_tensors(self), **prefixed(kv)}

    @classmethod
    def apply(cls, pipe, learned: LearnedAction) -> PromptEncoder:
        load_weights(pipe.unet, unprefixed(learned.tensors))
        return super().apply(pipe, learned)
