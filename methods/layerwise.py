"""Layer-wise conditioning: a different text encoding for each cross-attention layer.

ADI (spec section 1) and P+ give cross-attention layer l its own encoding y_l. The UNet
passes one ``encoder_hidden_states`` tensor to every layer, so the L encodings travel
concatenated along the sequence axis, (B, L*77, d), and each layer's attention processor,
built with its fixed layer index, slices out its own 77 rows before running diffusers'
scaled-dot-product attention. No call counters: the index is a constructor argument, so
gradient checkpointing, classifier-free guidance and repeated calls cannot confuse it.
Pipelines take such tensors as ``prompt_embeds`` unchanged.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from actionbench.fingerprint import cross_attention_layers  # noqa: F401  (re-exported: methods.layerwise)


class LayerwiseAttnProcessor(AttnProcessor2_0):
    """SDPA attention that reads rows ``[index*seq, (index+1)*seq)`` of the context."""

    def __init__(self, index: int, num_layers: int, seq_len: int = 77):
        super().__init__()
        self.index = index
        self.num_layers = num_layers
        self.seq_len = seq_len

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        if encoder_hidden_states is not None and encoder_hidden_states.shape[1] == self.num_layers * self.seq_len:
            start = self.index * self.seq_len
            encoder_hidden_states = encoder_hidden_states[:, start : start + self.seq_len]
        return super().__call__(attn, hidden_states, encoder_hidden_states, *args, **kwargs)


def install_layerwise(unet, seq_len: int = 77) -> list[str]:
    """Give every cross-attention layer a :class:`LayerwiseAttnProcessor`; return layer names."""
    names = cross_attention_layers(unet)
    procs = dict(unet.attn_processors)
    for i, name in enumerate(names):
        procs[name] = LayerwiseAttnProcessor(i, len(names), seq_len)
    unet.set_attn_processor(procs)
    return names


def stack_layers(per_layer: torch.Tensor) -> torch.Tensor:
    """(B, L, 77, d) per-layer encodings -> (B, L*77, d), the UNet's context tensor."""
    b, layers, seq, d = per_layer.shape
    return per_layer.reshape(b, layers * seq, d)


def repeat_for_layers(states: torch.Tensor, num_layers: int) -> torch.Tensor:
    """One encoding (B, 77, d) used by all layers -> (B, L*77, d)."""
    return states.repeat(1, num_layers, 1)
