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


def require_placeholder(ids: torch.Tensor, placeholder_id: int) -> None:
    """Every prompt (row of ``ids``) must contain the placeholder. Not checked on the ``meta``
    device, where tensors have shapes but no values (``actionbench speed`` counts there)."""
    if ids.is_meta:
        return
    if not (ids == placeholder_id).any(dim=1).all():
        raise ActionBenchError("every prompt must contain the learned token (write '{}' where the action goes)")


def encode(text_encoder, ids: torch.Tensor, placeholder_id: int | None = None, vectors: torch.Tensor | None = None):
    """Encode token ids -> (B, 77, d) hidden states, splicing ``vectors`` (B, d) if given."""
    if vectors is None:
        return text_encoder(ids)[0]
    require_placeholder(ids, placeholder_id)
    with spliced(text_encoder, placeholder_id, vectors):
        return text_encoder(ids)[0]


def initial_vector(tokenizer, text_encoder, word: str) -> torch.Tensor:
    """The frozen embedding of ``word`` (mean over its pieces), in fp32, to start a token from."""
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if not ids:
        raise ActionBenchError(f"initializer word {word!r} is empty after tokenization")
    table = text_encoder.get_input_embeddings().weight
    return table[ids].detach().float().mean(0).clone()


# -- one or two text encoders (SD 1.x/2.x, SDXL) ------------------------------------------

SDXL_KEYS = ("clip_l", "clip_g")  # diffusers' SDXL textual-inversion layout: one tensor per encoder


def text_encoders(pipe) -> list[tuple]:
    """The pipeline's (tokenizer, text encoder) pairs: one on SD 1.x/2.x, two on SDXL."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def is_sdxl(pipe) -> bool:
    return len(text_encoders(pipe)) > 1


class TextEncoders:
    """Every text encoder of a pipeline behind one interface, so methods need not know which model.

    A learned identifier is ONE vector of width ``sum(widths)``: on SD the text encoder's
    width, on SDXL the two encoders' token-embedding widths side by side (768 + 1280),
    slice ``[:w1]`` spliced into ``text_encoder`` and ``[w1:]`` into ``text_encoder_2``.
    Ids are (B, 77) on SD and (B, 2, 77) on SDXL (one row per tokenizer); a placeholder id
    is an int on SD and a pair on SDXL. :meth:`encode` gives what the UNet reads:

    - SD 1.x/2.x: the last hidden states (B, 77, d); no pooled embedding (None);
    - SDXL: the penultimate hidden states of both encoders concatenated along the width
      (B, 77, w1 + w2), and the pooled embedding ``text_encoder_2``'s projection of its EOS
      state (B, p), exactly as ``StableDiffusionXLPipeline.encode_prompt`` makes them.
    """

    def __init__(self, pipe):
        self.pairs = text_encoders(pipe)
        self.sdxl = len(self.pairs) > 1

    @property
    def widths(self) -> list[int]:
        return [int(te.get_input_embeddings().weight.shape[1]) for _, te in self.pairs]

    @property
    def width(self) -> int:
        return sum(self.widths)

    @property
    def device(self):
        return self.pairs[0][1].device

    def _one_or_all(self, items: list):
        return items[0] if not self.sdxl else (torch.stack(items, 1) if isinstance(items[0], torch.Tensor) else tuple(items))

    def tokenize(self, prompts: list[str], device=None) -> torch.Tensor:
        return self._one_or_all([tokenize(tok, prompts, device) for tok, _ in self.pairs])

    def add_placeholder(self, token: str):
        return self._one_or_all([add_placeholder(tok, token) for tok, _ in self.pairs])

    def initial_vector(self, word: str) -> torch.Tensor:
        return torch.cat([initial_vector(tok, te, word) for tok, te in self.pairs])

    def split(self, vectors: torch.Tensor) -> list[torch.Tensor]:
        """(..., sum(widths)) -> one (..., w_e) view per encoder."""
        return list(torch.split(vectors, self.widths, dim=-1))

    def named(self, vectors: torch.Tensor, token: str) -> dict[str, torch.Tensor]:
        """The file layout diffusers reads: ``{token: v}`` on SD, ``{"clip_l": v1, "clip_g": v2}`` on SDXL."""
        if not self.sdxl:
            return {token: vectors}
        return {key: v.contiguous() for key, v in zip(SDXL_KEYS, self.split(vectors))}

    def from_named(self, tensors: dict[str, torch.Tensor], token: str) -> torch.Tensor:
        """The inverse of :meth:`named`."""
        if not self.sdxl:
            return tensors[token]
        return torch.cat([tensors[k] for k in SDXL_KEYS], -1)

    def embedding_tables(self) -> list[torch.Tensor]:
        """Each encoder's frozen token-embedding matrix."""
        return [te.get_input_embeddings().weight for _, te in self.pairs]

    def encode(self, ids: torch.Tensor, placeholder=None, vectors: torch.Tensor | None = None):
        """Encode ids -> (states, pooled); ``vectors`` (B, sum(widths)) go in at the placeholder."""
        if not self.sdxl:
            return encode(self.pairs[0][1], ids, placeholder, vectors), None
        hidden, pooled = [], None
        parts = self.split(vectors) if vectors is not None else [None] * len(self.pairs)
        for e, ((tok, te), part) in enumerate(zip(self.pairs, parts)):
            row = ids[:, e]
            if part is None:
                out = te(row, output_hidden_states=True)
            else:
                require_placeholder(row, placeholder[e])
                with spliced(te, placeholder[e], part):
                    out = te(row, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if e == len(self.pairs) - 1:
                pooled = self._pooled(tok, te, row, out)
        return torch.cat(hidden, -1), pooled

    @staticmethod
    def _pooled(tok, te, ids: torch.Tensor, out) -> torch.Tensor:
        """The projected state at each sequence's first EOS. transformers finds it by argmax of the
        ids when a config has the legacy eos_token_id 2, which would pick an added placeholder
        (its id is past the vocabulary); the first EOS is what that argmax finds without one."""
        eos = (ids == tok.eos_token_id).int().argmax(-1)
        last = out.last_hidden_state
        return te.text_projection(last[torch.arange(len(ids), device=last.device), eos.to(last.device)])
