"""What a learned action (or the world ControlNet) depends on in its base model.

A fingerprint is a JSON-ready dict: model family (SD 1.x/2.x or SDXL), token width per
text encoder, the UNet's cross-attention layer names in the paper's order (down -> mid ->
up), a short hash of the architecture and a checksum of two frozen tensors. It lives on
the ground floor because both the methods (learned-action files, ``methods/learned.py``)
and the world's ControlNet training (``actionbench/world/controlnet_train.py``) write it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FAMILIES = {"sd": "an SD 1.x/2.x model", "sdxl": "an SDXL model"}
_BLOCK_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


def cross_attention_layers(unet) -> list[str]:
    """Names of the UNet's cross-attention (attn2) processors in order down, mid, up."""
    names = [n for n in unet.attn_processors if n.endswith("attn2.processor")]
    # attn_processors walks modules in registration order (down, up, mid); the paper
    # counts layers down -> mid -> up, so sort by block group, keeping order within.
    return sorted(names, key=lambda n: _BLOCK_ORDER.get(n.split(".", 1)[0], 3))


def text_encoder_widths(pipe) -> list[int]:
    """Token-embedding width of each text encoder: one on SD 1.x/2.x, two on SDXL."""
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if getattr(pipe, "text_encoder_2", None) is not None else [])
    return [int(te.get_input_embeddings().weight.shape[1]) for te in encoders]


def _architecture(pipe) -> str:
    """A short hash of the UNet's config and the text encoders' depth and activation."""
    unet = {k: v for k, v in dict(pipe.unet.config).items() if not k.startswith("_")}
    te = pipe.text_encoder.config
    arch = {"unet": unet, "text": [te.num_hidden_layers, te.hidden_act, te.hidden_size]}
    if getattr(pipe, "text_encoder_2", None) is not None:  # (absent on SD: its hashes stay as they were)
        te2 = pipe.text_encoder_2.config
        arch["text_2"] = [te2.num_hidden_layers, te2.hidden_act, te2.hidden_size, te2.projection_dim]
    blob = json.dumps(arch, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_fingerprint(pipe) -> dict[str, Any]:
    """What a learned action depends on: family, sizes, layer names, architecture, a checksum of weights."""
    widths = text_encoder_widths(pipe)
    emb = pipe.text_encoder.get_input_embeddings().weight
    return {
        "family": "sdxl" if len(widths) > 1 else "sd",
        "token_width": sum(widths),  # SDXL: both encoders' widths side by side (an identifier's width)
        "text_encoder_widths": widths,
        "architecture": _architecture(pipe),
        "cross_attention_layers": cross_attention_layers(pipe.unet),
        # Sums of two frozen tensors: tell different weights apart, tolerate fp16/fp32 loads.
        "checksum": [float(emb.detach().float()[:1000].abs().sum()), float(pipe.unet.conv_in.weight.detach().float().abs().sum())],
    }


def describe(fingerprint: dict[str, Any]) -> str:
    """``an SDXL model (text encoders 768 + 1280 wide, 70 cross-attention layers)``, from a fingerprint."""
    family = fingerprint.get("family", "sd")
    widths = fingerprint.get("text_encoder_widths", [fingerprint.get("token_width")])
    wide = " + ".join(map(str, widths))
    encoders = f"text encoders {wide} wide" if len(widths) > 1 else f"token width {wide}"
    return f"{FAMILIES.get(family, family)} ({encoders}, {len(fingerprint.get('cross_attention_layers', []))} cross-attention layers)"
