"""Small Stable Diffusion XL pipelines with SDXL's real topology, randomly initialised.

SDXL (``stabilityai/stable-diffusion-xl-base-1.0``) differs from SD 1.x/2.x in ways every
method sees: two text encoders (CLIP ViT-L, ``text_encoder``, and OpenCLIP bigG with a
projection, ``text_encoder_2``) whose penultimate hidden states are concatenated along
the width (768 + 1280 = 2048 = the UNet's ``cross_attention_dim``); a pooled text
embedding (``text_encoder_2``'s projected EOS state) and six size/crop numbers
(``time_ids``) added to the timestep embedding (``addition_embed_type="text_time"``); and
a UNet with several transformer layers per block (1, 2, 10: 70 cross-attention layers,
not SD's 16) and no cross-attention at the highest resolution.

:func:`build_sdxl_pipeline` makes a ``StableDiffusionXLPipeline`` of any size with those
flags, both tokenizers built from the real CLIP BPE vocabulary (:mod:`actionbench.tokenizer`;
``tokenizer_2`` pads with ``!`` as SDXL's does). The tests use tiny ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .models import ddim_scheduler, small_vae


@dataclass
class SDXLPipelineSpec:
    """Sizes of an SDXL pipeline. Block layout as SDXL: a plain down block, then cross-attention ones.

    ``transformer_layers_per_block`` is per UNet level (SDXL: 1, 2, 10; the first level
    has no attention); the mid block has as many as the last level, as in SDXL.
    """

    image_size: int = 32
    vae_channels: tuple[int, ...] = (8, 8, 16)  # len-1 downsamplings: 32 px -> 8 x 8 latents
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (16, 32, 32)
    transformer_layers_per_block: tuple[int, ...] = (1, 1, 2)
    layers_per_block: int = 1
    head_dim: int = 8
    norm_groups: int = 4
    text_width: int = 32  # text_encoder (CLIP ViT-L: 768)
    text_width_2: int = 48  # text_encoder_2 (OpenCLIP bigG: 1280)
    projection_dim: int = 48  # text_encoder_2's pooled projection (1280)
    text_layers: int = 2
    text_heads: int = 4
    text_ffn: int = 64
    time_embed_dim: int = 8  # addition_time_embed_dim (256)
    prediction_type: str = "epsilon"
    extra: dict = field(default_factory=dict)

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)


def _text_config(width: int, spec: SDXLPipelineSpec, act: str, pad_token_id: int, projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    from .tokenizer import VOCAB_SIZE

    kw = {"projection_dim": projection_dim} if projection_dim else {}
    return CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=width,
        intermediate_size=spec.text_ffn,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        max_position_embeddings=77,
        hidden_act=act,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=pad_token_id,
        **kw,
    )


def build_sdxl_unet(spec: SDXLPipelineSpec):
    from diffusers import UNet2DConditionModel

    n = len(spec.unet_channels)
    return UNet2DConditionModel(
        sample_size=spec.latent_size,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        block_out_channels=tuple(spec.unet_channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        layers_per_block=spec.layers_per_block,
        transformer_layers_per_block=tuple(spec.transformer_layers_per_block),
        norm_num_groups=spec.norm_groups,
        cross_attention_dim=spec.text_width + spec.text_width_2,
        attention_head_dim=tuple(max(1, c // spec.head_dim) for c in spec.unet_channels),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=spec.time_embed_dim,
        projection_class_embeddings_input_dim=6 * spec.time_embed_dim + spec.projection_dim,
        **spec.extra,
    )


def build_sdxl_pipeline(spec: SDXLPipelineSpec | None = None, seed: int = 0):
    """A randomly initialised ``StableDiffusionXLPipeline`` with the real CLIP tokenizers."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .tokenizer import clip_tokenizer

    spec = spec or SDXLPipelineSpec()
    torch.manual_seed(seed)
    unet = build_sdxl_unet(spec)
    vae = small_vae(spec, scaling_factor=0.13025)  # SDXL's VAE scale
    # text_encoder: CLIP ViT-L (quick_gelu, pads with <|endoftext|>); text_encoder_2: bigG (gelu, pads with "!").
    text_encoder = CLIPTextModel(_text_config(spec.text_width, spec, "quick_gelu", 49407))
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(spec.text_width_2, spec, "gelu", 0, spec.projection_dim))
    scheduler = ddim_scheduler(spec.prediction_type)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(pad_token="!"),
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
