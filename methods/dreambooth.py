"""DreamBooth (Ruiz et al., CVPR 2023): fine-tune the UNet on the exemplars.

The exemplars' prompts carry a rare identifier in place of the action ("Young fit woman
sks in studio"); the UNet (all of it, or a LoRA on its attention projections with
``lora: true``) learns to draw the exemplars for it, while the text encoder stays frozen
(diffusers' ``train_dreambooth.py`` default). With prior preservation each step also
denoises class images the frozen model drew from ``class_prompt`` (paper, eq. 2):
L = L_exemplars + prior_loss_weight * L_class.

Defaults: ADI's supplementary (ADI-SPEC.md, "Baselines"): batch 2, lr 5e-5, 1000 steps,
50 prior images. Identifier "sks", prior loss weight 1.0, LoRA rank 4: diffusers'
DreamBooth examples. The learned file holds only what changed: the LoRA's matrices, or
for the full fine-tune the UNet's tensors (never the VAE or the text encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from actionbench.errors import ActionBenchError

from .base import PromptEncoder
from .config import MethodConfig
from .learned import LearnedAction
from .registry import register
from .weights import (
    WeightMethod,
    add_lora,
    load_lora,
    load_weights,
    lora_state,
    prefixed,
    prior_preservation_loss,
    unprefixed,
)


@dataclass
class DreamBoothConfig(MethodConfig):
    steps: int = 1000  # ADI supplementary
    lr: float = 5e-5  # ADI supplementary
    batch_size: int = 2  # ADI supplementary (exemplars per step; as many class images again)
    identifier: str = "sks"  # DreamBooth's rare token, written where the action goes
    lora: bool = False  # True: train a LoRA instead of the whole UNet
    lora_rank: int = 4  # diffusers train_dreambooth_lora.py default
    prior_preservation: bool = True
    num_class_images: int = 50  # ADI supplementary ("+50 prior images")
    class_prompt: str = "a photo of a person"  # (ours) the class of ActionBench's exemplars
    prior_loss_weight: float = 1.0  # DreamBooth paper / diffusers default
    class_sample_steps: int = 50  # DDIM steps for the class images (ADI-SPEC.md sampling)

    def __post_init__(self):
        super().__post_init__()
        if not self.identifier.strip():
            raise ActionBenchError("identifier must be a non-empty word")
        if self.lora_rank < 1:
            raise ActionBenchError(f"lora_rank must be >= 1 (got {self.lora_rank})")
        if self.prior_preservation and self.num_class_images < 1:
            raise ActionBenchError("prior_preservation needs num_class_images >= 1")
        if self.class_sample_steps < 1:
            raise ActionBenchError(f"class_sample_steps must be >= 1 (got {self.class_sample_steps})")


@register
class DreamBooth(WeightMethod):
    name = "dreambooth"
    summary = "fine-tunes the UNet, or a LoRA with lora: true (Ruiz et al. 2023)"
    Config = DreamBoothConfig

    def setup(self, work_dir: Path) -> None:
        cfg = self.config
        self.prepare_weights(work_dir)
        unet = self.pipe.unet
        if cfg.lora:
            self.params = add_lora(unet, cfg.lora_rank, seed=cfg.seed)
        else:
            self.params = self.train_unet_tensors([n for n, _ in unet.named_parameters()])
        self.latents = self.exemplar_latents()
        with torch.no_grad():
            ids = self.text.tokenize([e.prompt(cfg.identifier) for e in self.action_set.exemplars], self.text.device)
            states, pooled = self.text.encode(ids)  # pooled: SDXL's pooled embedding, else None
        self.states = states.to(self.device)
        self.pooled = pooled.to(self.device) if pooled is not None else None

    def parameters(self) -> list[torch.Tensor]:
        return self.params

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        b = self.config.batch_size
        idx = torch.randint(0, len(self.action_set), (b,), generator=generator).to(self.device)
        pooled = self.pooled[idx] if self.pooled is not None else None
        latents, states, pooled = self.batch_with_class(generator, self.latents[idx], self.states[idx], pooled)
        losses = self.denoise(generator, latents, states, pooled)
        loss = prior_preservation_loss(losses, b, self.config.prior_loss_weight)
        loss.backward()
        return {"loss": float(loss.detach()), "exemplar_loss": float(losses[:b].detach().mean())}

    def fill(self) -> str:
        return self.config.identifier

    def learned_tensors(self) -> dict[str, torch.Tensor]:
        if self.config.lora:
            return prefixed(lora_state(self.pipe.unet))
        return prefixed({n: p.detach().cpu() for n, p in self.pipe.unet.named_parameters()})

    def extra_metadata(self) -> dict:
        return {"lora": self.config.lora, "lora_rank": self.config.lora_rank}

    @classmethod
    def apply(cls, pipe, learned: LearnedAction) -> PromptEncoder:
        tensors = unprefixed(learned.tensors)
        if learned.extra.get("lora"):
            load_lora(pipe.unet, tensors, learned.extra["lora_rank"])
        else:
            load_weights(pipe.unet, tensors)
        return PromptEncoder(pipe)
