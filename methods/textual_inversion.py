"""Textual Inversion (Gal et al., ICLR 2023): one token vector for the action.

Defaults from ADI's supplementary (ADI-SPEC.md, "Baselines"): batch 2, lr 2.5e-4, 3000
steps. The learned file keeps the token's vector under the token's name, the layout
``pipe.load_textual_inversion`` reads.
"""

from dataclasses import dataclass

from .registry import register
from .token_method import DenoisingTokenMethod, TokenConfig


@dataclass
class TextualInversionConfig(TokenConfig):
    steps: int = 3000
    lr: float = 2.5e-4
    batch_size: int = 2
    layerwise: bool = False


@register
class TextualInversion(DenoisingTokenMethod):
    name = "textual-inversion"
    summary = "one learned token (Gal et al. 2023)"
    Config = TextualInversionConfig
