"""The mask measurements of evaluate/adi_masks.py on hand-made gradients."""

import torch

from evaluate.adi_masks import mask_stats, masks_for


def test_a_mask_keeping_the_weak_channels_keeps_little_of_the_norm():
    g = torch.tensor([[4.0, 3.0, 0.0, 0.0]])
    weak = torch.tensor([[0, 0, 1, 1]])
    s = mask_stats(g, weak)
    assert s["channels"] == 0.5 and s["norm"] == 0.0 and s["cosine"] == 0.0
    strong = torch.tensor([[1, 0, 0, 0]])
    s = mask_stats(g, strong)
    assert abs(s["norm"] - 16 / 25) < 1e-6 and abs(s["cosine"] - 0.8) < 1e-6


def test_masks_for_follows_the_spec_on_a_constructed_triple():
    # channel 0: differs across contexts (context); channel 3: differs across actions (action)
    anchor = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    context_diff = torch.tensor([[5.0, 1.1, 1.0, 1.0]])
    action_diff = torch.tensor([[1.0, 1.0, 1.2, 9.0]])
    m = masks_for(anchor, context_diff, action_diff, beta=0.25)  # drop 1 of 4 channels per mask
    assert m["context"].tolist() == [[0, 1, 1, 1]]  # the largest D_c is dropped
    assert m["action"][0, 3] == 1 and int(m["action"].sum()) == 3  # the largest D_a is kept
    assert m["adi"].tolist() == (m["context"] & m["action"]).tolist()
    assert m["union"].tolist() == (m["context"] | m["action"]).tolist()


def test_split_half_cosine_is_one_for_identical_gradients_and_falls_with_noise():
    from evaluate.adi_masks import split_half_cosine

    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(64, generator=gen)
    same = signal.repeat(40, 1)
    mean, low, high = split_half_cosine(same, same, n_boot=50)
    assert abs(mean - 1) < 1e-5 and low <= mean + 1e-6 and high >= mean - 1e-6
    noisy = signal + 3 * torch.randn(40, 64, generator=gen)
    assert split_half_cosine(noisy, noisy, n_boot=50)[0] < 0.9


def test_informativeness_ranks_a_mask_on_the_signal_above_a_random_one():
    """Gradients whose action signal lives in 8 channels: the max mask (keeps the largest |g|)
    finds them and beats a random mask of the same share; ``none`` is the ceiling's row."""
    from evaluate.adi_masks import informativeness

    gen = torch.Generator().manual_seed(0)
    n, d = 64, 64
    signal = torch.zeros(d)
    signal[:8] = 4.0
    anchor = signal + 0.5 * torch.randn(n, 2, d, generator=gen)  # (N, L=2, d)
    g = torch.stack([anchor, anchor, anchor], 1)  # the context and action gradients do not matter to min/max/random
    out = informativeness(g, kinds=("none", "random", "min"), betas=(0.875,), n_boot=50)
    assert set(out) == {"none", "random", "min"} and set(out["none"]) == {"-"}
    # "min" drops the smallest |g|: it keeps the 8 signal channels
    assert out["min"]["0.875"]["channels"] == 0.125
    assert out["min"]["0.875"]["cosine"] > out["random"]["0.875"]["cosine"] + 0.1  # 1.00 vs 0.87 here


def test_informativeness_markdown_rows_and_mean():
    from evaluate.adi_masks import informativeness_markdown

    cell = lambda c: {"cosine": c, "low": c - 0.1, "high": c + 0.1, "channels": 0.125}  # noqa: E731
    report = {"actions": {"salute": {"adi": {"0.6": cell(0.1)}}, "sit": {"adi": {"0.6": cell(0.5)}}}}
    text = informativeness_markdown(report, rows=(("adi", "0.6"), ("random", "0.875")))
    assert "| adi | 0.6 | 12.5% | 0.10 [0.00, 0.20] | 0.50 [0.40, 0.60] | 0.30 |" in text
    assert "random" not in text  # a row missing on some action is left out
