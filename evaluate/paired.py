"""Intervals and paired tests for comparing methods on the same prompts.

Every method in a comparison draws the same images slots (same action, learning seed,
subject, sampling seed), so a slot's outcome (hit or miss) is *paired* across methods.
These are pure functions of 0/1 outcome arrays:

- :func:`mcnemar_exact`: the exact (binomial) McNemar test on the discordant slots;
- :func:`paired_bootstrap`: the difference of two methods' accuracies with a 95%
  interval and a two-sided p-value, resampling slots (or whole clusters, e.g. learning
  seeds, then slots within them);
- :func:`bootstrap_ci`: one method's accuracy with a 95% interval, resampled the same way.

Clusters matter: images made with one learned identifier are not independent of each
other, so where several learning seeds exist the interval resamples seeds first, then
images within the drawn seeds (a two-level bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mcnemar_exact(a: Sequence[int], b: Sequence[int]) -> dict:
    """Exact two-sided McNemar test of paired 0/1 outcomes ``a`` and ``b`` (same slots).

    Returns ``{"a_only": n10, "b_only": n01, "p": p}``: ``n10`` slots where only ``a`` hit,
    ``n01`` where only ``b`` did; ``p = min(1, 2 * P(X <= min(n10, n01)))`` for
    ``X ~ Binomial(n10 + n01, 1/2)``.
    """
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same slots: {a.shape} vs {b.shape}")
    n10 = int(((a == 1) & (b == 0)).sum())
    n01 = int(((a == 0) & (b == 1)).sum())
    n = n10 + n01
    k = min(n10, n01)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"a_only": n10, "b_only": n01, "p": min(1.0, 2 * tail)}


def _resample(clusters: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of one bootstrap sample: slots, or clusters and then slots within each drawn cluster."""
    if clusters is None:
        return rng.integers(0, n, n)
    ids = np.unique(clusters)
    members = {c: np.flatnonzero(clusters == c) for c in ids}
    parts = []
    for c in rng.choice(ids, size=len(ids), replace=True):
        m = members[c]
        parts.append(m[rng.integers(0, len(m), len(m))])
    return np.concatenate(parts)


def bootstrap_ci(x: Sequence[float], clusters: Sequence | None = None, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``x`` with a percentile bootstrap interval."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    cl = None if clusters is None else np.asarray(clusters)
    rng = np.random.default_rng(seed)
    means = np.array([x[_resample(cl, len(x), rng)].mean() for _ in range(n_boot)])
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(lo), float(hi)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], clusters: Sequence | None = None, n_boot: int = 2000,
                     seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``a - b`` over paired slots, its bootstrap interval and a two-sided p-value.

    The p-value is twice the smaller share of bootstrap differences on either side of 0
    (at least ``1 / n_boot``), the usual percentile-bootstrap test.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same slots: {a.shape} vs {b.shape}")
    d = a - b
    cl = None if clusters is None else np.asarray(clusters)
    rng = np.random.default_rng(seed)
    diffs = np.array([d[_resample(cl, len(d), rng)].mean() for _ in range(n_boot)])
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())
    return {"diff": float(d.mean()), "low": float(lo), "high": float(hi), "p": float(min(1.0, max(p, 1 / n_boot)))}
