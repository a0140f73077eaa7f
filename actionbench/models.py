"""Loading Stable Diffusion pipelines, and building small ones with the real topology.

``load_pipeline`` takes what ``--model`` accepts everywhere: a registry name (``sd21-base``,
``sd15``: ``actionbench/data/models.yaml``, resolved to hub ids that still exist by
``model_registry``), a hub id, a local diffusers folder, or ``world`` (the ActionWorld model
shipped inside the package). Offline, a model that is not in the local cache gives a one-line
error naming the mirrors and how to pass a local folder instead.

``build_pipeline`` makes a randomly initialised pipeline of any size with SD 2.1's or SD
1.x's architecture flags: the tests use tiny ones, ``actionbench speed`` full-size ones,
and the ActionWorld model is trained from one. ``build_sdxl_pipeline`` (in
:mod:`actionbench.sdxl`) does the same for Stable Diffusion XL; ``load_pipeline`` loads an
SDXL folder or hub id as a ``StableDiffusionXLPipeline`` (told by its ``model_index.json``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .errors import ActionBenchError
from .model_registry import load_from_hub
from .model_registry import pipeline_class_name as registry_pipeline_class

DEFAULT_MODEL = "sd21-base"  # the paper's SD 2.1-base, through the registry
WORLD_MODEL_DIR = Path(__file__).parent / "world" / "model"  # v2b's ActionWorld model (the archived tables')
WORLD_V3_MODEL_DIR = Path(__file__).parent / "world" / "model-v3"  # ActionWorld v3's (issue #23): ``--model world``
# the ActionWorld models by --model name: ``world`` is the newest world's (v3); ``world-v2b``
# keeps the archived tables' model loadable by name
WORLD_MODELS = {"world": WORLD_V3_MODEL_DIR, "world-v2b": WORLD_MODEL_DIR, "world-v3": WORLD_V3_MODEL_DIR}
# each world version's model by its own name (what reports and defaults write, whatever ``world`` points at)
WORLD_MODEL_OF = {"v2b": "world-v2b", "v3": "world-v3"}


def world_model_dir(version: str) -> Path:
    """The folder of world ``version``'s model (``v2b``: actionbench/world/model, ``v3``: model-v3)."""
    return WORLD_MODELS[WORLD_MODEL_OF[version]]
WORLD_CONTROLNET_DIR = Path(__file__).parent / "world" / "controlnet"  # `actionbench world train-controlnet` (v2b's)
WORLD_V3_CONTROLNET_DIR = Path(__file__).parent / "world" / "controlnet-v3"  # `... train-controlnet --world v3`
# the world ControlNets by name ("world": v2b's, as learned files of the archived tables record it) and by world
WORLD_CONTROLNETS = {"world": WORLD_CONTROLNET_DIR, "world-v3": WORLD_V3_CONTROLNET_DIR}
WORLD_CONTROLNET_OF = {"v2b": "world", "v3": "world-v3"}
# The world's trimmed CLIP tokenizer (`python -m actionbench.world.vocab`), for PipelineSpec(text_vocab="world").
WORLD_VOCAB_DIR = Path(__file__).parent / "world" / "tokenizer"


@dataclass
class PipelineSpec:
    """Sizes and flags of a Stable Diffusion pipeline (``flavor`` picks SD 2.x or 1.x flags).

    The UNet keeps SD's block layout (3 cross-attention down blocks, a cross-attention mid
    block, 3 cross-attention up blocks, ``layers_per_block`` resnets), so with
    ``layers_per_block=2`` it has SD's 16 cross-attention layers at any width.

    The text side: ``text_vocab`` None is CLIP's full 49,408-token vocabulary; ``"world"``
    is the ActionWorld's trimmed CLIP tokenizer (``WORLD_VOCAB_DIR``, under 1k tokens:
    :mod:`actionbench.world.vocab`); any other string is a folder holding a CLIP-style
    ``vocab.json`` / ``merges.txt``. ``text_max_length`` is the tokenizer's context and the
    text encoder's position count (77 as in SD). The text encoder's vocabulary size and
    bos/eos/pad ids are the tokenizer's.
    """

    flavor: str = "sd2"  # "sd2": linear projections, per-level head dims, v/eps; "sd1": conv projections
    image_size: int = 32
    vae_channels: tuple[int, ...] = (8, 16)  # len-1 downsamplings of the image
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (16, 16, 32, 32)
    layers_per_block: int = 2
    head_dim: int = 8
    norm_groups: int = 4
    text_width: int = 32
    text_layers: int = 2
    text_heads: int = 4
    text_ffn: int = 64
    prediction_type: str = "epsilon"
    extra: dict = field(default_factory=dict)
    text_vocab: str | None = None  # None: full CLIP; "world": the trimmed world tokenizer; else a tokenizer folder
    text_max_length: int = 77

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)


def ddim_scheduler(prediction_type: str = "epsilon"):
    """Stable Diffusion's DDIM scheduler (scaled-linear betas 0.00085-0.012), as every built pipeline uses."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)


def small_vae(spec, **config):
    """A randomly initialised ``AutoencoderKL`` of ``spec``'s sizes (SD's block layout, one layer per block)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
                         up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
                         block_out_channels=tuple(spec.vae_channels), latent_channels=spec.latent_channels,
                         norm_num_groups=spec.norm_groups, layers_per_block=1, sample_size=spec.image_size, **config)


def clip_style_tokenizer(folder: str | Path, pad_token: str = "<|endoftext|>", max_length: int = 77):
    """A ``transformers.CLIPTokenizer`` from a folder with CLIP-style ``vocab.json`` / ``merges.txt``
    (the conventions of :func:`actionbench.tokenizer.clip_tokenizer`; ``pad_token`` must be in the vocabulary)."""
    import json

    from transformers import CLIPTokenizer

    folder = Path(folder)
    missing = [f for f in ("vocab.json", "merges.txt") if not (folder / f).is_file()]
    if missing:
        raise ActionBenchError(f"{folder} has no {' or '.join(missing)}: not a CLIP tokenizer folder")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    absent = [t for t in (pad_token, "<|startoftext|>", "<|endoftext|>") if t not in vocab]
    if absent:
        raise ActionBenchError(f"{folder}/vocab.json lacks {absent}: the pad, bos and eos tokens must be in the vocabulary")
    return CLIPTokenizer.from_pretrained(str(folder), pad_token=pad_token, model_max_length=max_length)


def resolve_text_vocab(text_vocab: str) -> Path:
    """``world`` -> the committed world tokenizer folder; anything else: a tokenizer folder path."""
    if not isinstance(text_vocab, str) or not text_vocab:
        raise ActionBenchError(f"text_vocab must be None, 'world' or a tokenizer folder, not {text_vocab!r}")
    if text_vocab == "world":
        if not (WORLD_VOCAB_DIR / "vocab.json").exists():
            raise ActionBenchError(
                f"the world tokenizer is missing from {WORLD_VOCAB_DIR}: build it with `python -m actionbench.world.vocab`"
            )
        return WORLD_VOCAB_DIR
    folder = Path(text_vocab).expanduser()
    if not folder.is_dir():
        raise ActionBenchError(f"text_vocab {text_vocab!r} is neither 'world' nor an existing tokenizer folder")
    return folder


def spec_tokenizer(spec: PipelineSpec):
    """The tokenizer ``spec`` asks for: SD 2.x pads with ``!``, SD 1.x with ``<|endoftext|>``."""
    from .tokenizer import clip_tokenizer, clip_tokenizer_dir

    length = spec.text_max_length
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ActionBenchError(f"text_max_length must be an int >= 2 (bos + eos), not {length!r}")
    pad = "!" if spec.flavor == "sd2" else "<|endoftext|>"
    if spec.text_vocab is None:
        return clip_tokenizer(pad_token=pad) if length == 77 else clip_style_tokenizer(clip_tokenizer_dir(), pad, length)
    return clip_style_tokenizer(resolve_text_vocab(spec.text_vocab), pad, length)


def build_pipeline(spec: PipelineSpec | None = None, seed: int = 0):
    """A randomly initialised ``StableDiffusionPipeline`` with the real CLIP tokenizer (or ``spec.text_vocab``'s)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .tokenizer import VOCAB_SIZE

    spec = spec or PipelineSpec()
    sd2 = spec.flavor == "sd2"
    tokenizer = spec_tokenizer(spec)  # no random numbers drawn: the weights below are as before
    torch.manual_seed(seed)
    n = len(spec.unet_channels)
    heads = [max(1, c // spec.head_dim) for c in spec.unet_channels]
    unet = UNet2DConditionModel(
        sample_size=spec.latent_size,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        block_out_channels=tuple(spec.unet_channels),
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        layers_per_block=spec.layers_per_block,
        norm_num_groups=spec.norm_groups,
        cross_attention_dim=spec.text_width,
        # SD 2.x: per-level head counts and linear projections; SD 1.x: 8 heads, conv projections.
        attention_head_dim=tuple(heads) if sd2 else spec.head_dim,
        use_linear_projection=sd2,
        **spec.extra,
    )
    vae = small_vae(spec)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE if spec.text_vocab is None else len(tokenizer),
            hidden_size=spec.text_width,
            intermediate_size=spec.text_ffn,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            max_position_embeddings=spec.text_max_length,
            hidden_act="gelu" if sd2 else "quick_gelu",
            bos_token_id=tokenizer.bos_token_id,  # 49406, 49407, 0 (SD 2.x) / 49407 on CLIP's vocabulary
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = ddim_scheduler(spec.prediction_type)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def resolve_model(model: str) -> str:
    """``world`` / ``world-v2b`` / ``world-v3`` -> the packaged ActionWorld folder; anything else unchanged."""
    if model in WORLD_MODELS:
        folder = WORLD_MODELS[model]
        if not (folder / "model_index.json").exists():
            how = "actionbench world train --world v3 (docs/actionworld.md)" if model == "world-v3" else "actionbench world train"
            raise ActionBenchError(f"the ActionWorld model {model!r} is missing from {folder}: train it with `{how}`")
        return str(folder)
    return model


def pipeline_class_name(path: str, local: bool) -> str | None:
    """``_class_name`` of a diffusers folder's or hub id's ``model_index.json`` (None: unreadable here)."""
    from diffusers import DiffusionPipeline

    for local_only in (local, True):
        try:
            return DiffusionPipeline.load_config(path, local_files_only=local_only).get("_class_name")
        except Exception:  # not cached, offline, not a pipeline: from_pretrained says which below
            continue
    return None


def is_sdxl_class(name: str | None) -> bool:
    return bool(name) and name.startswith("StableDiffusionXL")


def world_version(model: str | None) -> str | None:
    """The ActionWorld version (``v2b``, ``v3``) of a ``--model`` string: a world registry name or
    one of their folders; None for anything else."""
    if not model:
        return None
    try:
        path = (WORLD_MODELS[model] if model in WORLD_MODELS else Path(model)).resolve()
    except (OSError, TypeError, ValueError):
        return None
    for version, name in WORLD_MODEL_OF.items():
        if path == WORLD_MODELS[name].resolve():
            return version
    return None


def is_world_pipeline(pipe) -> bool:
    """Whether ``pipe`` is the v2b ActionWorld model (the one the world ControlNet was trained
    beside), loaded by name or from its folder."""
    if world_version(getattr(pipe, "model_name", None)) == "v2b":
        return True
    path = getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path")
    return world_version(str(path)) == "v2b" if path else False


def resolve_controlnet(name: str) -> str:
    """``world`` (v2b's) / ``world-v3`` -> the packaged ActionWorld OpenPose ControlNet folder; anything else unchanged."""
    if name in WORLD_CONTROLNETS:
        folder = WORLD_CONTROLNET_DIR if name == "world" else WORLD_CONTROLNETS[name]  # (the module attribute: tests move it)
        if not (folder / "config.json").exists():
            how = "actionbench world train-controlnet" + ("" if name == "world" else " --world v3")
            raise ActionBenchError(f"the ActionWorld ControlNet {name!r} is missing from {folder}: train it with `{how}`")
        return str(folder)
    return name


def load_pipeline(model: str = DEFAULT_MODEL, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load a Stable Diffusion 1.x/2.x or SDXL pipeline with a DDIM scheduler and no safety checker."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    path = resolve_model(model)
    local = os.path.isdir(path)
    if not local and (path.startswith((".", "/", "~")) or os.sep in path.strip("/").split("/", 1)[-1]):
        raise ActionBenchError(f"model folder '{path}' does not exist")
    # the pipeline class: the registry's for a known name or id, else the folder's / hub's model_index.json
    cls_name = (None if local else registry_pipeline_class(path)) or pipeline_class_name(path, local)
    if is_sdxl_class(cls_name):
        cls, kwargs = StableDiffusionXLPipeline, dict(torch_dtype=dtype, add_watermarker=False)
    else:
        cls, kwargs = StableDiffusionPipeline, dict(torch_dtype=dtype, safety_checker=None, requires_safety_checker=False)
    if local:
        try:
            pipe = cls.from_pretrained(path, local_files_only=True, **kwargs)
        except Exception as err:
            raise ActionBenchError(f"'{path}' is not a loadable diffusers Stable Diffusion folder: {err}") from err
    else:  # registry name or hub id: each hub id in order, the network then the cache
        pipe = load_from_hub(path, cls, **kwargs)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.model_name = model  # what learned-action files record as their base model
    return pipe.to(device)


def pipeline_name(pipe) -> str:
    """The ``--model`` string a pipeline was loaded from (``model_name``), else its path."""
    return getattr(pipe, "model_name", None) or getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path", "unknown")


def spec_dict(spec: PipelineSpec) -> dict:
    return asdict(spec)
