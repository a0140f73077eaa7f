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
