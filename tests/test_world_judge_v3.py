"""The v3 judge (issue #23 item 2): subject, action, scene and outfit heads, trained on
exact v3 labels, saved and reloaded bit for bit; v2b call paths accept it. A tiny judge
(width 4, a few steps on 64 renders) stands in for the real one (about a CPU-hour)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from actionbench.errors import ActionBenchError
from actionbench.world import judge as J
from actionbench.world import render as R
from actionbench.world import render_v3 as V

ITEMS = [("panda", "handstand", "striped/park", 1), ("man", "wave", "camo/library", 2),
         ("fox", "sit", "dotted/snow", 3), ("woman", "salute", "white/gym", 4), ("dog", "jump", "zigzag/night", 5)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A width-4 v3 judge after 4 steps on 64 renders (16 held out), saved; (judge, report, folder)."""
    judge, report = J.fit_judge("v3", n_train=64, n_test=16, epochs=1, batch=16, threads=1, width=4, log=lambda s: None)
    folder = J.save_judge(judge, report, tmp_path_factory.mktemp("judge-v3"))
    return judge, report, folder


def test_labels_come_exactly_from_the_v3_contexts():
    x, y = J.render_labelled(6, 3, "v3")
    assert list(y) == list(J.HEADS) and x.shape == (6, 3, 64, 64)
    import numpy as np

    items = V.sample_triplets(6, np.random.default_rng([3, 7]))  # render_labelled's draw
    for k, (s, a, c, _) in enumerate(items):
        outfit, scene = V.split_context(c)
        assert (V.SUBJECTS[y["subject"][k]], V.ACTIONS[y["action"][k]], V.SCENES[y["scene"][k]], V.OUTFITS[y["outfit"][k]]) == (s, a, scene, outfit)
    assert list(J.render_labelled(2, 0, R)[1]) == ["subject", "action"]  # a world module works too


def test_tiny_v3_judge_trains_saves_and_reports_every_head(tiny):
    judge, report, folder = tiny
    assert judge.world == "v3" and judge.heads == J.HEADS and judge.has_context
    cfg = json.loads((folder / "judge.json").read_text())
    assert cfg["world"] == "v3" and cfg["width"] == 4
    assert (cfg["subjects"], cfg["actions"], cfg["scenes"], cfg["outfits"]) == (V.SUBJECTS, V.ACTIONS, V.SCENES, V.OUTFITS)
    for h in J.HEADS:
        assert 0.0 <= cfg[f"heldout_{h}_acc"] <= 1.0
    assert {"scene_head.weight", "outfit_head.bias"} <= set(load_file(str(folder / "judge.safetensors")))


def test_reloaded_v3_judge_predicts_bit_for_bit(tiny):
    judge, _, folder = tiny
    loaded = J.load_judge(folder)
    assert loaded is not judge and loaded.world == "v3" and loaded.heads == J.HEADS
    x = J.to_input([V.render(*it) for it in ITEMS])
    a, b = judge.eval()(x).by_head(), loaded(x).by_head()
    assert list(a) == list(J.HEADS) and all(torch.equal(a[h], b[h]) for h in J.HEADS)
    ims = [V.render(*it) for it in ITEMS]
    readings = J.read_images(ims, loaded)
    assert readings == J.read_images(ims, judge)  # bit for bit (same batches)
    r = readings[0]
    assert r.scene in V.SCENES and r.outfit in V.OUTFITS and set(r.probs) == set(J.HEADS)
    assert abs(sum(r.probs["outfit"].values()) - 1) < 1e-5 and set(r.probs["scene"]) == set(V.SCENES)
    ctx = J.judge_context(ims, loaded)
    assert [(c[0], c[1]) for c in ctx] == [(r.scene, r.outfit) for r in readings]
    assert ctx[0][2] == {"scene": r.probs["scene"], "outfit": r.probs["outfit"]}


def test_v3_judge_on_v2b_call_paths(tiny):
    judge, _, _ = tiny
    ims = [V.render(*it) for it in ITEMS[:3]]
    verdicts = J.judge_images(ims, judge)
    assert [len(v) for v in verdicts] == [3, 3, 3] and all(set(p) == {"subject", "action"} for _, _, p in verdicts)
    x, ys, ya = J.render_set(8, 1, "v3")
    acc_s, acc_a = J.accuracy(judge, x, ys, ya)
    assert 0 <= acc_s <= 1 and 0 <= acc_a <= 1
    ls, la = judge(x)  # unpacks as the v2b judge's (subject, action) pair
    out = judge(x)
    assert ls.shape == (8, len(V.SUBJECTS)) and out.scene.shape == (8, len(V.SCENES)) and out.outfit.shape == (8, len(V.OUTFITS))
    from actionbench.world.fidelity import score

    rows = [(s, a, "") for s, a, _, _ in ITEMS[:3]]
    assert score(rows, ims, judge)["n"] == 3


def test_bad_input_is_a_clear_error(tiny, tmp_path):
    judge, _, _ = tiny
    with pytest.raises(ActionBenchError, match="unknown ActionWorld version 'v4'"):
        J.train_judge(tmp_path / "x", world="v4")
    with pytest.raises(ActionBenchError, match="unknown ActionWorld version"):
        J.render_set(2, 0, "v9")
    with pytest.raises(ActionBenchError, match="no trained judge"):
        J.load_judge(tmp_path / "nothing")
    with pytest.raises(ActionBenchError, match="has no scene or outfit head"):
        J.head_accuracy(J.load_judge(), *J.render_labelled(2, 0, "v3"))
    with pytest.raises(ActionBenchError, match="distinct label"):
        J.Judge(["a", "a"], ["b"], width=4)
    with pytest.raises(ActionBenchError, match="positive"):
        J.fit_judge("v3", n_train=0)


def test_v3_judge_never_overwrites_the_v2b_judge(tmp_path):
    assert J.default_judge_dir("v3") == J.JUDGE_V3_DIR == J.JUDGE_DIR.with_name("judge-v3")
    assert J.default_judge_dir("v2b") == J.JUDGE_DIR
    (tmp_path / "judge.json").write_text((J.JUDGE_DIR / "judge.json").read_text())  # no "world": a v2b judge
    with pytest.raises(ActionBenchError, match="holds a v2b judge"):
        J.train_judge(tmp_path, world="v3")


def test_cli_trains_a_v3_judge(tmp_path, capsys):
    import argparse

    from actionbench.world.cli import add_world_parser

    parser = argparse.ArgumentParser()
    add_world_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["world", "train-judge", "--world", "v3"])
    assert args.out is None and args.width == 16  # -> judge-v3/, beside the committed judge
    args = parser.parse_args(["world", "train-judge", "--world", "v3", "--out", str(tmp_path), "--width", "4",
                              "--n-train", "8", "--n-test", "4", "--epochs", "1", "--threads", "1"])
    assert args.func(args) == 0
    assert "v3 judge held-out accuracy: subject" in capsys.readouterr().out
    assert json.loads((tmp_path / "judge.json").read_text())["heldout_outfit_acc"] >= 0
