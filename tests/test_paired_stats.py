"""Paired tests and bootstrap intervals (evaluate/paired.py) against hand-computed values."""

import numpy as np
import pytest

from evaluate.paired import bootstrap_ci, mcnemar_exact, paired_bootstrap


def test_mcnemar_exact_matches_the_binomial_tail():
    # 8 slots where only a hits, 2 where only b hits, 5 where both, 5 where neither
    a = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 5
    b = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 5
    r = mcnemar_exact(a, b)
    assert (r["a_only"], r["b_only"]) == (8, 2)
    assert r["p"] == pytest.approx(2 * (1 + 10 + 45) / 1024)  # 2 * P(X <= 2), X ~ Bin(10, 1/2)
    assert mcnemar_exact(b, a)["p"] == r["p"]
    assert mcnemar_exact(a, a)["p"] == 1.0
    assert mcnemar_exact([1] * 12, [0] * 12)["p"] == pytest.approx(2 / 2**12)


def test_paired_bootstrap_finds_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    b = rng.integers(0, 2, 300)
    a = b.copy()
    a[rng.choice(np.flatnonzero(b == 0), 60, replace=False)] = 1  # a hits 60 more slots
    r = paired_bootstrap(a, b, n_boot=1000)
    assert r["diff"] == pytest.approx(60 / 300)
    assert r["low"] > 0 and r["p"] < 0.01
    same = paired_bootstrap(b, b, n_boot=200)
    assert same["diff"] == 0 and same["p"] == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap([1, 0], [1])


def test_cluster_bootstrap_is_wider_when_clusters_disagree():
    x = np.array([1] * 50 + [0] * 50)
    clusters = np.array([0] * 50 + [1] * 50)  # one learning seed hit everything, the other nothing
    m, lo, hi = bootstrap_ci(x, n_boot=500)
    mc, loc, hic = bootstrap_ci(x, clusters, n_boot=500)
    assert m == mc == 0.5 and lo < 0.5 < hi
    assert hic - loc > 2 * (hi - lo)
