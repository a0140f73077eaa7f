"""ActionWorld renderer and World-ActionBench: determinism, distinct kinds and actions, layout."""

import json

import numpy as np
import pytest

from actionbench.world import render as R
from actionbench.world.benchmark import BENCH_DIR, write_action


def arr(im):
    return np.asarray(im, dtype=np.float32)


def test_world_has_required_kinds_actions_contexts():
    assert len(R.SUBJECTS) >= 9 and len(R.HUMANS) >= 4 and len(R.ANIMALS) >= 5
    assert len(R.ACTIONS) >= 12 and len(R.CONTEXTS) >= 4
    assert set(R.ACTIONBENCH) == {"salute", "gesture", "cheer", "pray", "sit", "squat", "meditate", "handstand"}
    unnamed_ab = [a for a in R.ACTIONBENCH.values() if a in R.UNNAMED]
    assert len(unnamed_ab) >= 3 and "handstand" in R.UNNAMED


def test_captions_leave_unnamed_actions_out():
    assert R.caption("panda", "squat", "park") == "a panda squats in a park"
    assert R.caption("panda", "handstand", "park") == "a panda in a park"
    assert R.caption("panda", "handstand", "park", name_action=True) == "a panda performs a handstand in a park"


def test_render_is_deterministic_and_seed_dependent():
    a = R.render("fox", "handstand", "beach", seed=3)
    b = R.render("fox", "handstand", "beach", seed=3)
    c = R.render("fox", "handstand", "beach", seed=4)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_subject_kinds_are_distinct():
    ims = {s: arr(R.render(s, "stand", "park", seed=1)) for s in R.SUBJECTS}
    for i, s in enumerate(R.SUBJECTS):
        for t in R.SUBJECTS[i + 1 :]:
            assert np.abs(ims[s] - ims[t]).mean() > 1.0, (s, t)


def test_actions_are_distinct_and_jittered():
    ims = {a: arr(R.render("man", a, "park", seed=2)) for a in R.ACTIONS}
    for i, a in enumerate(R.ACTIONS):
        for b in R.ACTIONS[i + 1 :]:
            assert np.abs(ims[a] - ims[b]).mean() > 0.5, (a, b)
    # exemplars of one action are alike but not identical
    x, y = arr(R.render("man", "cheer", "park", seed=5)), arr(R.render("man", "cheer", "park", seed=6))
    assert np.abs(x - y).mean() > 0.1


def _figure_mask(subject, action, context, seed, size=64):
    """Pixels where the render differs from its own background (the drawn figure)."""
    S = size * R.SUPERSAMPLE
    bg, _ = R.draw_background(context, S, R._rng("scene", seed, context))
    bg = arr(bg.resize((size, size), R.Image.Resampling.LANCZOS))
    return np.abs(arr(R.render(subject, action, context, seed, size)) - bg).max(axis=2) > 24


def test_figures_are_big_and_inside_the_frame():
    """World v2: a standing adult fills most of the frame height; no pose leaves the frame."""
    for seed in range(3):
        rows = np.flatnonzero(_figure_mask("man", "stand", "park", seed).any(axis=1))
        assert rows[-1] - rows[0] + 1 >= 0.7 * 64, seed
    for s in ("man", "bear", "fox"):
        for a in R.ACTIONS:
            m = _figure_mask(s, a, "beach", 7)
            assert m.sum() > 0.08 * 64 * 64, (s, a)  # bold: the figure covers a good part of the image
            assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()), (s, a)


def test_same_seed_other_action_keeps_character_and_scene():
    a = arr(R.render("woman", "sit", "city", seed=9))
    b = arr(R.render("woman", "wave", "city", seed=9))
    assert np.array_equal(a[:, :4], b[:, :4])  # the scene's left edge is the same scene


def test_benchmark_layout(tmp_path):
    folder = write_action(tmp_path, "handstand")
    text = json.loads((folder / "text.json").read_text())
    assert sorted(text) == [f"{i:02d}.png" for i in range(1, 11)]
    for name, templates in text.items():
        assert (folder / name).exists() and templates[0].count("{}") == 1
        assert templates[0].split(" {} ")[0] in {R.subject_phrase(s) for s in R.HUMANS}
        diff = folder / "action_different" / name[:-4]
        assert sorted(p.stem for p in diff.glob("*.png")) == sorted(a for a in R.ACTIONS if a != "handstand")


def test_committed_benchmark_matches_renderer_and_loads():
    folder = BENCH_DIR / "handstand"
    assert (folder / "text.json").exists()
    first = json.loads((folder / "text.json").read_text())
    assert len(first) == 10
    from PIL import Image

    from actionbench.world.benchmark import exemplar_specs

    sp = exemplar_specs("handstand")[0]
    fresh = R.render(sp["subject"], "handstand", sp["context"], sp["seed"])
    assert np.array_equal(arr(Image.open(folder / sp["file"]).convert("RGB")), arr(fresh))
    bench = pytest.importorskip("actionbench.bench")
    sets = bench.load_benchmark(BENCH_DIR)
    assert set(sets) == set(R.ACTIONBENCH)
