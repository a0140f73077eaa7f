"""The world's difficulties as numbers (actionbench/world/phenomena.py): the figure's mask,
the loss share by hand, the text-naming rates from a fidelity report, the CLI on the model."""

import json

import numpy as np
import pytest

from actionbench.world import phenomena as P
from actionbench.world import render as R


def test_render_with_mask_keeps_the_image_and_covers_the_figure():
    for s, a, c, sd in [("panda", "salute", "park", 3), ("man", "handstand", "night", 1), ("dog", "sit", "city", 5)]:
        im, mask = R.render_with_mask(s, a, c, sd)
        assert np.array_equal(np.asarray(im), np.asarray(R.render(s, a, c, sd)))
        assert mask.shape == (64, 64) and mask.min() >= 0 and mask.max() <= 1
        assert 0.05 < mask.mean() < 0.6  # a figure, not the frame
        assert mask[0, 0] == mask[0, -1] == 0  # the corners are background
        # the same character and scene in another pose: outside both silhouettes nothing changes
        other_im, other_mask = R.render_with_mask(s, "squat" if a != "squat" else "stand", c, sd)
        moved = np.abs(np.asarray(im, dtype=float) - np.asarray(other_im, dtype=float)).sum(-1) > 30
        outside = (mask < 0.01) & (other_mask < 0.01)
        # (a few edge pixels: the image is Lanczos-resampled, the mask box-averaged)
        assert moved[outside].mean() < 0.03 and moved[mask > 0.99].mean() > 0.2


def test_loss_share_by_hand():
    err = np.array([[[1.0, 3.0], [0.0, 4.0]]])
    mask = np.array([[[1.0, 0.0], [1.0, 0.5]]])
    assert P.loss_share(err, mask) == pytest.approx((1 + 0 + 2) / 8)
    assert np.isnan(P.loss_share(np.zeros((1, 2, 2)), mask))


def _fidelity():
    per = lambda acc: {"subject": 1.0, "action": acc, "both": acc, "n": 36}  # noqa: E731
    named = {a: per(0.9) for a in R.NAMED}
    return {"n_per_pair": 4, "named": {"per_action": named, "subject_acc": 0.97, "action_acc": 0.9},
            "unnamed": {"per_action": {"salute": per(0.25), "meditate": per(0.3), "handstand": per(0.5)}},
            "action_free": {"n": 40, "judged_action_counts": {"handstand": 20, "meditate": 10, "salute": 2, "stand": 8}},
            "judge": {"renders": {"subject": 1.0, "action": 0.99}, "vae_reconstructions": {"subject": 0.98, "action": 0.91}}}


def test_text_action_rates_from_a_fidelity_report():
    text, free = P.text_action_rates(_fidelity())
    assert set(text) == set(free) == set(R.ACTIONBENCH)
    assert text["cheer"] == 90.0 and text["salute"] == 25.0
    assert free == {"salute": 5.0, "gesture": 0.0, "cheer": 0.0, "pray": 0.0, "sit": 0.0, "squat": 0.0,
                    "meditate": 25.0, "handstand": 50.0}
    broken = _fidelity()
    del broken["action_free"]
    with pytest.raises(ValueError, match="action-free"):
        P.text_action_rates(broken)


def test_cli_writes_the_report_on_the_world_model(tmp_path):
    from actionbench.cli import main

    fid = tmp_path / "fidelity.json"
    fid.write_text(json.dumps(_fidelity()))
    out = tmp_path / "phenomena.json"
    assert main(["world", "phenomena", "--fidelity", str(fid), "--n", "8", "--threads", "1", "--out", str(out)]) in (0, None)
    rep = json.loads(out.read_text())
    assert rep["token_width"] == 64
    assert rep["benchmark_actions_text_can_name"] == ["salute", "gesture", "cheer", "pray", "sit", "squat"]
    loss = rep["figure_loss_share"]["v2b"]
    assert 0 < loss["area"] < loss["share"] < 100 and loss["share_ci"][0] <= loss["share"] <= loss["share_ci"][1]
    assert rep["judge"]["through_vae"]["action"] == 91.0 and rep["fidelity"]["scene"] is None


def test_cli_compare_puts_another_worlds_figure_loss_beside(tmp_path):
    from actionbench.cli import main

    fid = tmp_path / "fidelity.json"
    fid.write_text(json.dumps(_fidelity()))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"figure_loss_share": {"v1": {"share": 12.5}}}))
    out = tmp_path / "phenomena.json"
    args = ["world", "phenomena", "--fidelity", str(fid), "--n", "4", "--threads", "1", "--name", "mine", "--out", str(out)]
    assert main(args + ["--compare", str(other)]) in (0, None)
    assert set(json.loads(out.read_text())["figure_loss_share"]) == {"v1", "mine"}
    assert main(args + ["--compare", str(tmp_path / "missing.json")]) == 2
