"""ADI's gradient masks (ADI-SPEC.md section 2) and the ablations' masks, as pure functions.

Every function takes gradients of shape (L, d), one row per layer's identifier (any
leading shape works: masks are computed per row over the last dimension), and returns a
``torch.bool`` mask of the same shape: True = the channel is kept (its gradient reaches
the optimizer), False = masked.

``k = round(beta * d)`` channels are dropped per row, with Python's ``round`` (half to
even: round(1.5) = 2, round(2.5) = 2). Ties: channels with
equal scores are ordered by channel index (stable sort), so among tied channels the
lower-indexed ones are dropped first, in both masks.
"""

from __future__ import annotations

import torch

MERGES = ("intersection", "union")


def drop_count(d: int, beta: float) -> int:
    """k = round(beta * d): how many of d channels a beta-mask drops."""
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    return int(round(beta * d))


def _drop(scores: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Keep-mask dropping, per row, the k channels with the largest (or smallest) score."""
    order = torch.argsort(scores, dim=-1, descending=largest, stable=True)
    keep = torch.ones_like(scores, dtype=torch.bool)
    return keep.scatter(-1, order[..., :k], False)


def context_mask(g_anchor: torch.Tensor, g_context: torch.Tensor, beta: float) -> torch.Tensor:
    """m_c: drop the beta fraction of channels with the LARGEST D_c = |g(a,c) - g(a,c')|.

    Channels whose gradient agrees across contexts carry the action and are kept.
    """
    d_c = (g_anchor - g_context).abs()
    return _drop(d_c, drop_count(d_c.shape[-1], beta), largest=True)


def action_mask(g_anchor: torch.Tensor, g_action: torch.Tensor, beta: float) -> torch.Tensor:
    """m_a: drop the beta fraction of channels with the SMALLEST D_a = |g(a,c) - g(a',c)|.

    Channels whose gradient agrees across actions carry the context and are dropped.
    """
    d_a = (g_anchor - g_action).abs()
    return _drop(d_a, drop_count(d_a.shape[-1], beta), largest=False)


def relative_difference(g: torch.Tensor, h: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """|g - h| / (|g| + |h|), in [0, 1]: how much two gradients disagree on a channel,
    whatever the channel's size (0 where both are 0)."""
    return (g - h).abs() / ((g.abs() + h.abs()).clamp_min(eps))


def relative_adi_mask(g_anchor: torch.Tensor, g_context: torch.Tensor, g_action: torch.Tensor, beta: float) -> torch.Tensor:
    """(ours) ADI's two masks on *relative* differences (:func:`relative_difference`): drop the
    beta fraction of channels whose gradient disagrees most across contexts, and the beta
    fraction that disagrees least across actions, then intersect. Scaling one channel's
    three gradients by any factor leaves it unchanged; ADI's absolute differences instead
    mostly track the gradient's size (docs/adi-trial.md measures that), so its context mask
    drops the largest channels first."""
    k = drop_count(g_anchor.shape[-1], beta)
    m_c = _drop(relative_difference(g_anchor, g_context), k, largest=True)
    m_a = _drop(relative_difference(g_anchor, g_action), k, largest=False)
    return m_c & m_a


def merge_masks(m_c: torch.Tensor, m_a: torch.Tensor, merge: str = "intersection") -> torch.Tensor:
    """m = m_c AND m_a (intersection of kept channels, the paper's choice) or m_c OR m_a."""
    if merge == "intersection":
        return m_c & m_a
    if merge == "union":
        return m_c | m_a
    raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")


def adi_mask(
    g_anchor: torch.Tensor,
    g_context: torch.Tensor,
    g_action: torch.Tensor,
    beta: float,
    merge: str = "intersection",
) -> torch.Tensor:
    """ADI's mask m = merge(m_c, m_a) over the anchor gradient's channels (spec section 2)."""
    if not (g_anchor.shape == g_context.shape == g_action.shape):
        raise ValueError(f"gradient shapes differ: {g_anchor.shape}, {g_context.shape}, {g_action.shape}")
    return merge_masks(context_mask(g_anchor, g_context, beta), action_mask(g_anchor, g_action, beta), merge)


# -- ablation strategies (spec: "Ablations the paper reports") ---------------------


def uniform_mask(shape: torch.Size | tuple, beta: float, device=None) -> torch.Tensor:
    """Drop a fixed, evenly spaced beta fraction of channels (the same every step)."""
    d = shape[-1]
    k = drop_count(d, beta)
    keep = torch.ones(d, dtype=torch.bool, device=device)
    keep[(torch.arange(k, device=device) * d) // k] = False  # k distinct indices, evenly spaced
    return keep.expand(shape).clone()


def random_mask(shape: torch.Size | tuple, beta: float, generator: torch.Generator) -> torch.Tensor:
    """Drop a fresh random beta fraction of channels per row (a new draw each step)."""
    scores = torch.rand(shape, generator=generator)
    return _drop(scores, drop_count(shape[-1], beta), largest=True)


def magnitude_mask(g: torch.Tensor, beta: float, drop: str) -> torch.Tensor:
    """Drop the beta fraction of channels with the smallest (``"min"``) or largest (``"max"``) |g|."""
    if drop not in ("min", "max"):
        raise ValueError(f"drop must be 'min' or 'max', got {drop!r}")
    return _drop(g.abs(), drop_count(g.shape[-1], beta), largest=drop == "max")


def strategy_mask(
    strategy: str,
    g_anchor: torch.Tensor,
    g_context: torch.Tensor,
    g_action: torch.Tensor,
    beta: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The keep-mask of a named strategy (ADI's default is ``"adi"``, the intersection)."""
    if strategy == "adi":
        return adi_mask(g_anchor, g_context, g_action, beta, "intersection")
    if strategy == "union":
        return adi_mask(g_anchor, g_context, g_action, beta, "union")
    if strategy == "relative":
        return relative_adi_mask(g_anchor, g_context, g_action, beta)
    if strategy == "context-only":
        return context_mask(g_anchor, g_context, beta)
    if strategy == "action-only":
        return action_mask(g_anchor, g_action, beta)
    if strategy == "reversed":  # update only what ADI would mask
        return ~adi_mask(g_anchor, g_context, g_action, beta, "intersection")
    if strategy == "none":
        return torch.ones_like(g_anchor, dtype=torch.bool)
    if strategy == "uniform":
        return uniform_mask(g_anchor.shape, beta, g_anchor.device)
    if strategy == "random":
        return random_mask(g_anchor.shape, beta, generator).to(g_anchor.device)
    if strategy in ("min", "max"):
        return magnitude_mask(g_anchor, beta, strategy)
    raise ValueError(f"unknown mask strategy {strategy!r}; one of {', '.join(STRATEGIES)}")


STRATEGIES = ("adi", "relative", "union", "context-only", "action-only", "reversed", "none", "uniform", "random", "min", "max")
# Strategies that need the context- and action-different gradients (the rest only g_anchor).
NEEDS_TRIPLES = ("adi", "relative", "union", "context-only", "action-only", "reversed")
