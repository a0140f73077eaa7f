"""ADI's gradient masks (ADI-SPEC.md section 2): hand-worked cases and properties."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from methods.adi.functional import (
    STRATEGIES,
    action_mask,
    adi_mask,
    context_mask,
    drop_count,
    magnitude_mask,
    random_mask,
    strategy_mask,
    uniform_mask,
)

T = torch.tensor


def test_context_mask_drops_largest_differences():
    ga = T([[0.0, 0.0, 0.0, 0.0, 0.0]])
    gc = T([[0.1, 5.0, 0.2, 3.0, 0.0]])  # |ga-gc| largest at channels 1 and 3
    assert context_mask(ga, gc, 0.4).tolist() == [[True, False, True, False, True]]


def test_action_mask_drops_smallest_differences():
    ga = T([[1.0, 1.0, 1.0, 1.0, 1.0]])
    gx = T([[1.0, 3.0, 1.1, 4.0, 2.0]])  # |ga-gx| smallest at channels 0 and 2
    assert action_mask(ga, gx, 0.4).tolist() == [[False, True, False, True, True]]


def test_adi_mask_intersection_and_union():
    ga = T([[0.0, 0.0, 0.0, 0.0]])
    gc = T([[9.0, 0.0, 0.0, 0.0]])  # context drops channel 0 (beta .25 -> k=1)
    gx = T([[5.0, 5.0, 0.0, 5.0]])  # action drops channel 2
    assert adi_mask(ga, gc, gx, 0.25).tolist() == [[False, True, False, True]]
    assert adi_mask(ga, gc, gx, 0.25, merge="union").tolist() == [[True, True, True, True]]


def test_mask_is_per_row():
    ga = torch.zeros(2, 3)
    gc = T([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert context_mask(ga, gc, 0.34).tolist() == [[False, True, True], [True, True, False]]


def test_ties_drop_lower_channel_index_first():
    ga = torch.zeros(1, 4)
    same = torch.ones(1, 4)
    assert context_mask(ga, same, 0.5).tolist() == [[False, False, True, True]]
    assert action_mask(ga, same, 0.5).tolist() == [[False, False, True, True]]


def test_drop_count_uses_round_and_rejects_bad_beta():
    assert drop_count(1024, 0.6) == 614
    assert drop_count(5, 0.5) == 2  # round(2.5) = 2 (half to even)
    assert drop_count(3, 0.5) == 2  # round(1.5) = 2
    for beta in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            drop_count(10, beta)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        adi_mask(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3), 0.5)


def test_uniform_mask_is_evenly_spaced_and_fixed():
    m = uniform_mask((2, 10), 0.5)
    assert m[0].tolist() == [False, True] * 5
    assert torch.equal(m[0], m[1])


def test_random_mask_changes_with_the_generator_state():
    g = torch.Generator().manual_seed(0)
    a, b = random_mask((4, 16), 0.5, g), random_mask((4, 16), 0.5, g)
    assert (~a).sum(-1).tolist() == [8] * 4 and not torch.equal(a, b)


def test_magnitude_masks():
    g = T([[0.1, -5.0, 0.3, 2.0]])
    assert magnitude_mask(g, 0.5, "min").tolist() == [[False, True, False, True]]
    assert magnitude_mask(g, 0.5, "max").tolist() == [[True, False, True, False]]


def test_reversed_is_the_complement_and_none_keeps_all():
    gen = torch.Generator().manual_seed(0)
    ga, gc, gx = torch.randn(3, 2, 8, generator=gen)
    m = strategy_mask("adi", ga, gc, gx, 0.5, gen)
    assert torch.equal(strategy_mask("reversed", ga, gc, gx, 0.5, gen), ~m)
    assert strategy_mask("none", ga, gc, gx, 0.5, gen).all()
    with pytest.raises(ValueError):
        strategy_mask("nope", ga, gc, gx, 0.5, gen)


grads = st.integers(1, 4).flatmap(
    lambda rows: st.integers(2, 40).flatmap(
        lambda d: st.tuples(
            *[st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=rows * d, max_size=rows * d) for _ in range(3)]
        ).map(lambda xs: tuple(torch.tensor(x).view(rows, d) for x in xs))
    )
)


@settings(max_examples=60, deadline=None)
@given(grads, st.floats(0.05, 0.95))
def test_mask_properties(g, beta):
    ga, gc, gx = g
    d = ga.shape[-1]
    k = drop_count(d, beta)
    m_c, m_a = context_mask(ga, gc, beta), action_mask(ga, gx, beta)
    assert m_c.dtype == torch.bool and m_c.shape == ga.shape
    # exactly k channels dropped per row by each mask
    assert ((~m_c).sum(-1) == k).all() and ((~m_a).sum(-1) == k).all()
    # every kept context channel differs no more than every dropped one (per row)
    dc, da = (ga - gc).abs(), (ga - gx).abs()
    for r in range(ga.shape[0]):
        if 0 < k < d:
            assert dc[r][m_c[r]].max() <= dc[r][~m_c[r]].min()
            assert da[r][m_a[r]].min() >= da[r][~m_a[r]].max()
    inter, union = adi_mask(ga, gc, gx, beta), adi_mask(ga, gc, gx, beta, "union")
    assert torch.equal(inter, m_c & m_a) and torch.equal(union, m_c | m_a)
    assert (inter <= union).all()
    # invariant to scaling all three gradients by 2 (exact in floating point)
    assert torch.equal(adi_mask(2 * ga, 2 * gc, 2 * gx, beta), inter)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_a_bool_mask_of_the_gradient_shape(strategy):
    gen = torch.Generator().manual_seed(1)
    ga, gc, gx = torch.randn(3, 16, 32, generator=gen)
    m = strategy_mask(strategy, ga, gc, gx, 0.6, gen)
    assert m.dtype == torch.bool and m.shape == ga.shape


def test_relative_mask_ignores_a_channels_size_and_adi_does_not():
    """(ours) ``relative``: scaling one channel's three gradients changes nothing; ADI's
    absolute context mask drops the channel once it is the largest."""
    from methods.adi.functional import adi_mask, relative_adi_mask, strategy_mask

    gen = torch.Generator().manual_seed(0)
    a, c, x = (torch.randn(1, 16, generator=gen) for _ in range(3))
    scaled = [t.clone() for t in (a, c, x)]
    for t in scaled:
        t[0, 3] *= 1000.0
    assert torch.equal(relative_adi_mask(a, c, x, 0.5), relative_adi_mask(*scaled, 0.5))
    assert not adi_mask(*scaled, 0.5)[0, 3]  # the big channel differs most across contexts: dropped
    assert torch.equal(strategy_mask("relative", a, c, x, 0.5, gen), relative_adi_mask(a, c, x, 0.5))
    assert int(relative_adi_mask(a, c, x, 0.5).sum()) <= 8
