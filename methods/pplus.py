"""P+ (Voynov et al., 2023): one token per cross-attention layer, no masks.

ADI's layer-wise identifiers without its gradient masks. Defaults from ADI's
supplementary (ADI-SPEC.md, "Baselines"): batch 8, lr 5e-3, 500 steps.
"""

from dataclasses import dataclass

from .registry import register
from .token_method import DenoisingTokenMethod, TokenConfig


@dataclass
class PPlusConfig(TokenConfig):
    steps: int = 500
    lr: float = 5e-3
    batch_size: int = 8
    layerwise: bool = True


@register
class PPlus(DenoisingTokenMethod):
    name = "pplus"
    summary = "per-layer tokens, no masks (Voynov et al. 2023)"
    Config = PPlusConfig
