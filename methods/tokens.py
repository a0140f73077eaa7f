"""Learned token vectors spliced into a frozen CLIP text encoder.

The placeholder (``<A>``) is added to the tokenizer only (a new id past the
vocabulary); the text encoder's embedding matrix is never resized or written. While a
prompt is encoded, the encoder's input-embedding module is swapped for
:class:`SplicedEmbedding`, which looks up every other id in the frozen matrix and puts
the learned vector (one per sequence in the batch) at the placeholder's positions, the
way peft's ``trainable_tokens`` splices its deltas. Gradients flow to the vectors only.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from actionbench.errors import ActionBenchError


class SplicedEmbedding(nn.Module):
    """A frozen embedding whose ``placeholder_id`` rows come from ``vectors`` (B, d)."""

    def __init__(self, base: nn.Embedding, placeholder_id: int, vectors: torch.Tensor):
        super().__init__()
        self.base = base
        self.placeholder_id = placeholder_id
        self.vectors = vectors

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_token = input_ids == self.placeholder_id
        # Ids past the frozen vocabulary (the placeholder) look up row 0, then get replaced.
        safe_ids = torch.where(is_token, torch.zeros_like(input_ids), input_ids)
        emb = self.base(safe_ids)
        vec = self.vectors.to(emb.dtype)
        if vec.dim() == 1:
            vec = vec.expand(input_ids.shape[0], -1)
        return torch.where(is_token.unsqueeze(-1), vec[:, None, :], emb)


@contextmanager
def spliced(text_encoder, placeholder_id: int, vectors: torch.Tensor):
    """Within the block, ``text_encoder`` reads ``vectors[i]`` for sequence i's placeholder."""
    base = text_encoder.get_input_embeddings()
    text_encoder.set_input_embeddings(SplicedEmbedding(base, placeholder_id, vectors))
    try:
        yield
    finally:
        text_encoder.set_input_embeddings(base)


def add_placeholder(tokenizer, token: str) -> int:
    """Register ``token`` with the tokenizer (idempotent) and return its single id."""
    tokenizer.add_tokens([token])
    ids = tokenizer(token, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ActionBenchError(f"placeholder {token!r} does not tokenize to one id ({ids}); pick another token")
    return ids[0]


def tokenize(tokenizer, prompts: list[str], device=None) -> torch.Tensor:
    """Pad/truncate prompts to the tokenizer's context (77) -> (B, 77) ids."""
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return ids.to(device) if device is not None else ids


def encode(text_encoder, ids: torch.Tensor, placeholder_id: int | None = None, vectors: torch.Tensor | None = None):
    """Encode token ids -> (B, 77, d) hidden states, splicing ``vectors`` (B, d) if given."""
    if vectors is None:
        return text_encoder(ids)[0]
    if not (ids == placeholder_id).any(dim=1).all():
        raise ActionBenchError("every prompt must contain the learned token (write '{}' where the action goes)")
    with spliced(text_encoder, placeholder_id, vectors):
        return text_encoder(ids)[0]


def initial_vector(tokenizer, text_encoder, word: str) -> torch.Tensor:
    """The frozen embedding of ``word`` (mean over its pieces), in fp32, to start a token from."""
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if not ids:
        raise ActionBenchError(f"initializer word {word!r} is empty after tokenization")
    table = text_encoder.get_input_embeddings().weight
    return table[ids].detach().float().mean(0).clone()
