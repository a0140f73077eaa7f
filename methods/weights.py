"""Methods that change model weights: load only their deltas, and undo them again.

DreamBooth (full or LoRA) and Custom Diffusion change the UNet. Their learned files hold
only what changed (a LoRA's A/B matrices, the cross-attention key/value projections, or,
for a full fine-tune, the UNet's tensors), keyed ``unet.<parameter name>``.

A pipeline is changed in place, and may be handed learned files of several methods one
after the other (an evaluation run over methods), so every change is undoable:
before a UNet parameter is first overwritten its original is kept on the CPU (on the
UNet object, nothing global), and a LoRA is added under one adapter name.
:func:`restore` puts the original weights back and removes the adapter; ``methods.generate``
calls it before applying any learned file, so a file is always applied to the base model
it was learned on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from actionbench.errors import ActionBenchError

from .base import Method
from .class_images import class_latents_and_states
from .diffusion import noisy_and_target, per_sample_mse
from .learned import LearnedAction, model_fingerprint

PREFIX = "unet."
ADAPTER = "actionbench"
_ORIGINALS = "_actionbench_original_weights"  # attribute on the UNet: {parameter name: CPU tensor}
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # every attention projection, as diffusers' DreamBooth LoRA


def unet_parameter(unet, name: str) -> torch.nn.Parameter:
    """The UNet parameter ``name`` (``...attn2.to_k.weight``)."""
    try:
        return unet.get_parameter(name)
    except AttributeError:
        raise ActionBenchError(f"the UNet has no parameter {name!r}: the learned file is for another architecture") from None


def remember(unet, names) -> None:
    """Keep a CPU copy of each named parameter, unless an earlier change already kept it."""
    store = unet.__dict__.setdefault(_ORIGINALS, {})
    for name in names:
        if name not in store:
            store[name] = unet_parameter(unet, name).detach().to("cpu", copy=True)


@torch.no_grad()
def load_weights(unet, tensors: dict[str, torch.Tensor]) -> None:
    """Overwrite UNet parameters with ``tensors`` ({parameter name: tensor}), keeping the originals."""
    remember(unet, tensors)
    for name, value in tensors.items():
        param = unet_parameter(unet, name)
        if param.shape != value.shape:
            raise ActionBenchError(f"{name}: shape {tuple(value.shape)} in the file, {tuple(param.shape)} in the model")
        param.copy_(value.to(param.device, param.dtype))


def lora_config(rank: int, alpha: float | None = None, targets=LORA_TARGETS):
    from peft import LoraConfig

    # alpha = rank: scale 1, the convention diffusers' loader assumes when no alpha is stored.
    return LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets), init_lora_weights="gaussian")


def add_lora(unet, rank: int, alpha: float | None = None, targets=LORA_TARGETS, seed: int = 0) -> list[torch.nn.Parameter]:
    """Add a fresh LoRA (our adapter name) to ``unet``; return its trainable parameters."""
    remove_lora(unet)
    with torch.random.fork_rng(devices=[]):  # seeded init, without touching the global RNG
        torch.manual_seed(seed)
        unet.add_adapter(lora_config(rank, alpha, targets), adapter_name=ADAPTER)
    return [p for n, p in unet.named_parameters() if f".{ADAPTER}." in n or n.endswith(f".{ADAPTER}")]


def lora_state(unet) -> dict[str, torch.Tensor]:
    """The LoRA's tensors, named as peft names them without the adapter (``...to_k.lora_A.weight``)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()}


def load_lora(unet, state: dict[str, torch.Tensor], rank: int, alpha: float | None = None, targets=LORA_TARGETS) -> None:
    """Add our adapter to ``unet`` and load ``state`` (as :func:`lora_state` returns it) into it."""
    from peft import set_peft_model_state_dict

    add_lora(unet, rank, alpha, targets)
    result = set_peft_model_state_dict(unet, state, adapter_name=ADAPTER)
    missing = [k for k in result.missing_keys if ADAPTER in k and "lora_" in k]
    if result.unexpected_keys or missing:
        raise ActionBenchError(f"LoRA does not fit this UNet (unexpected {result.unexpected_keys[:3]}, missing {missing[:3]})")
    unet.to(next(unet.parameters()).device)


def remove_lora(unet) -> None:
    """Remove our adapter; other adapters a user loaded stay."""
    config = getattr(unet, "peft_config", None) or {}
    if ADAPTER not in config:
        return
    if len(config) == 1:
        unet.unload_lora()  # unwraps the layers: parameter names are the plain ones again
    else:
        unet.delete_adapters(ADAPTER)


@torch.no_grad()
def restore(pipe) -> None:
    """Undo every weight change made through this module: the pipeline is the base model again."""
    unet = pipe.unet
    remove_lora(unet)
    store = unet.__dict__.pop(_ORIGINALS, {})
    for name, value in store.items():
        param = unet_parameter(unet, name)
        param.copy_(value.to(param.device, param.dtype))


def prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{name: t} -> {"unet.name": t}: the keys a learned file stores UNet tensors under."""
    return {PREFIX + k: v for k, v in tensors.items()}


def unprefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet tensors of a learned file, without the ``unet.`` prefix."""
    return {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}


# -- the method side -------------------------------------------------------------------


def prior_preservation_loss(losses: torch.Tensor, n_instance: int, weight: float) -> torch.Tensor:
    """DreamBooth eq. 2: mean loss of the first ``n_instance`` samples + weight * mean of the rest."""
    loss = losses[:n_instance].mean()
    if losses.shape[0] > n_instance:
        loss = loss + weight * losses[n_instance:].mean()
    return loss


class WeightMethod(Method):
    """What methods that change UNet weights share: prior images, a base fingerprint, undo."""

    def prepare_weights(self, work_dir: Path) -> None:
        """Start from the base model, make class images with it, freeze it, record its fingerprint."""
        cfg = self.config
        restore(self.pipe)
        self.base_fingerprint = model_fingerprint(self.pipe)
        self.class_latents = self.class_states = self.class_pooled = None
        if getattr(cfg, "prior_preservation", False):
            self.class_latents, self.class_states, self.class_pooled = class_latents_and_states(
                self.pipe, work_dir, cfg.class_prompt, cfg.num_class_images, self.resolution, cfg.class_sample_steps, cfg.seed
            )
        self.freeze_model()

    def train_unet_tensors(self, names: list[str]) -> list[torch.nn.Parameter]:
        """Make the named UNet parameters trainable (their originals kept for :func:`restore`)."""
        remember(self.pipe.unet, names)
        params = [self.pipe.unet.get_parameter(n) for n in names]
        for p in params:
            p.requires_grad_(True)
        return params

    def batch_with_class(self, generator: torch.Generator, latents: torch.Tensor, states: torch.Tensor, pooled=None):
        """Append ``batch_size`` class samples (latents, prompt states, SDXL's pooled embedding) when
        prior preservation is on -> (latents, states, pooled)."""
        if self.class_latents is None:
            return latents, states, pooled
        idx = torch.randint(0, len(self.class_latents), (self.config.batch_size,), generator=generator).to(self.device)
        cls_states = self.class_states.expand(len(idx), -1, -1).to(states.device, states.dtype)
        if pooled is not None:
            pooled = torch.cat([pooled, self.class_pooled.expand(len(idx), -1).to(pooled.device, pooled.dtype)])
        return torch.cat([latents, self.class_latents[idx]]), torch.cat([states, cls_states]), pooled

    def denoise(self, generator: torch.Generator, latents: torch.Tensor, states: torch.Tensor, pooled=None) -> torch.Tensor:
        """Per-sample denoising losses with uniform timesteps, (B,)."""
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        t = torch.randint(0, self.pipe.scheduler.config.num_train_timesteps, (len(latents),), generator=generator).to(self.device)
        noisy, target = noisy_and_target(self.pipe.scheduler, latents, noise, t)
        return per_sample_mse(self.predict(noisy, t, states, pooled), target)

    def export(self) -> LearnedAction:
        learned = super().export()
        learned.fingerprint = self.base_fingerprint  # the base model's, not the fine-tuned one's
        return learned
