"""The architectures ``actionbench speed`` builds, with random weights, and the settings it runs them in.

``tiny`` / ``mid`` are PipelineSpecs, ``tiny-sdxl`` an SDXLPipelineSpec (the SDXL tests' topology);
``sd21-base`` / ``sd15`` / ``sdxl-base`` (or any JSON file of the same layout; a config with
``text_encoder_2`` builds an SDXL pipeline) are public diffusers/transformers configs kept in
``evaluate/configs/``. A model-registry name (``sdxl``, an alias, a hub id) finds its config too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TEMPLATE = "a person {} in a park"


def _spec_archs() -> dict:
    from actionbench.models import PipelineSpec
    from actionbench.sdxl import SDXLPipelineSpec

    return {
        "tiny": PipelineSpec(),  # the tests' topology: 32 px images, 16x16 latents
        # A mid-size model for a 2-core CPU: SD's layout at 1/5 width, 32x32 latents.
        "mid": PipelineSpec(
            image_size=256, vae_channels=(32, 32, 32, 32), unet_channels=(64, 128, 256, 256), head_dim=32,
            norm_groups=32, text_width=256, text_layers=4, text_heads=4, text_ffn=1024,
        ),
        # the SDXL tests' topology: 32 px, 8x8 latents, text encoders 32 + 48 wide, 11 cross-attention layers
        "tiny-sdxl": SDXLPipelineSpec(),
    }


def arch_names() -> list[str]:
    return list(_spec_archs()) + sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_arch(name: str) -> dict:
    """``tiny`` / ``mid`` (a PipelineSpec), a config name in evaluate/configs, or a JSON path."""
    from actionbench.errors import ActionBenchError

    specs = _spec_archs()
    if name in specs:
        return {"name": name, "spec": specs[name]}
    path = Path(name) if name.endswith(".json") else CONFIG_DIR / f"{name}.json"
    if not path.is_file() and not name.endswith(".json"):
        path = _registry_config(name) or path
    if not path.is_file():
        raise ActionBenchError(f"unknown model {name!r}: one of {', '.join(arch_names())}, or a config .json file")
    cfg = json.loads(path.read_text())
    missing = {"unet", "text_encoder", "vae", "scheduler"} - set(cfg)
    if missing:
        raise ActionBenchError(f"{path}: config lacks {', '.join(sorted(missing))}")
    cfg.setdefault("name", path.stem)
    return cfg


def _registry_config(name: str) -> Path | None:
    """The config kept for a model-registry name, alias or hub id (``sdxl`` -> ``sdxl-base.json``)."""
    from actionbench.model_registry import lookup

    entry = lookup(name)
    if entry is None:
        return None
    for candidate in (entry.name, *entry.aliases):
        path = CONFIG_DIR / f"{candidate}.json"
        if path.is_file():
            return path
    return None


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def _from_config(arch: dict):
    """A StableDiffusionPipeline, or a StableDiffusionXLPipeline when the config has ``text_encoder_2``."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from actionbench.tokenizer import clip_tokenizer

    parts = dict(
        vae=AutoencoderKL.from_config(_strip(arch["vae"])),
        text_encoder=CLIPTextModel(CLIPTextConfig(**arch["text_encoder"])),
        unet=UNet2DConditionModel.from_config(_strip(arch["unet"])),
        scheduler=DDIMScheduler.from_config(_strip(arch["scheduler"])),
    )
    if "text_encoder_2" in arch:  # SDXL: CLIP ViT-L pads with <|endoftext|>, OpenCLIP bigG with "!"
        from diffusers import StableDiffusionXLPipeline
        from transformers import CLIPTextModelWithProjection

        return StableDiffusionXLPipeline(
            **parts, text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**arch["text_encoder_2"])),
            tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(pad_token="!"),
            force_zeros_for_empty_prompt=True, add_watermarker=False,
        )
    from diffusers import StableDiffusionPipeline

    sd2 = arch.get("flavor", "sd2") == "sd2"
    return StableDiffusionPipeline(
        **parts, tokenizer=clip_tokenizer(pad_token="!" if sd2 else "<|endoftext|>"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def text_encoder_modules(pipe) -> list:
    """The pipeline's text encoders: one on SD 1.x/2.x, two on SDXL."""
    from methods.tokens import text_encoders

    return [te for _, te in text_encoders(pipe)]


def build(arch: dict, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0):
    """A pipeline with ``arch``'s architecture and random weights, on ``device`` (may be ``meta``)."""
    from actionbench.models import build_pipeline
    from actionbench.sdxl import SDXLPipelineSpec, build_sdxl_pipeline

    torch.manual_seed(seed)
    with torch.device(device):
        if "spec" in arch:
            make = build_sdxl_pipeline if isinstance(arch["spec"], SDXLPipelineSpec) else build_pipeline
            pipe = make(arch["spec"], seed=seed)
        else:
            pipe = _from_config(arch)
            pipe.set_progress_bar_config(disable=True)
    pipe.model_name = f"random-{arch['name']}"
    for module in (pipe.unet, *text_encoder_modules(pipe), pipe.vae):
        module.to(device)
        if dtype != torch.float32:
            module.to(dtype)
    return pipe


def resolution(pipe) -> int:
    from methods.diffusion import native_resolution

    return native_resolution(pipe)


@dataclass
class Setting:
    precision: str
    checkpointing: bool

    @property
    def label(self) -> str:
        return self.precision + ("+ckpt" if self.checkpointing else "")


def _prepare(arch, device, setting: Setting):
    pipe = build(arch, device, PRECISIONS[setting.precision])
    if setting.checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    return pipe

