"""The committed ActionWorld judge loads and is accurate on fresh held-out renders, and
judges exactly as it did before the judge gained scene and outfit heads (issue #23)."""

import pytest

from actionbench.errors import ActionBenchError
from actionbench.world import render as R
from actionbench.world.judge import JUDGE_DIR, judge_context, judge_images, load_judge, read_images, render_set

# (subject, action, context, seed) -> the committed judge's verdict and its top probabilities,
# as recorded with the judge code before the extra heads (``man wave`` is its one unsure call)
RECORDED = [
    (("panda", "handstand", "park", 1), "panda", "handstand", 0.999999, 1.0),
    (("man", "wave", "city", 2), "man", "wave", 1.0, 0.700300),
    (("fox", "sit", "night", 3), "fox", "sit", 0.999971, 0.999999),
    (("old_man", "meditate", "beach", 4), "old_man", "meditate", 0.999995, 1.0),
    (("dog", "jump", "park", 5), "dog", "jump", 1.0, 1.0),
    (("woman", "salute", "beach", 6), "woman", "salute", 1.0, 0.999995),
]


def test_judge_accurate_on_fresh_renders():
    judge = load_judge()
    assert judge.subjects == R.SUBJECTS and judge.actions == R.ACTIONS
    items = [(s, a, R.CONTEXTS[(i + k) % len(R.CONTEXTS)], 900_000 + 31 * i + k)
             for i, s in enumerate(R.SUBJECTS) for k, a in enumerate(R.ACTIONS)]
    verdicts = judge_images([R.render(*it) for it in items], judge)
    subj = sum(v[0] == it[0] for v, it in zip(verdicts, items)) / len(items)
    act = sum(v[1] == it[1] for v, it in zip(verdicts, items)) / len(items)
    assert subj >= 0.9 and act >= 0.9, (subj, act)
    s, a, probs = verdicts[0]
    assert abs(sum(probs["subject"].values()) - 1) < 1e-4 and set(probs["action"]) == set(R.ACTIONS)


def test_committed_judge_judges_as_recorded():
    verdicts = judge_images([R.render(*it) for it, *_ in RECORDED])  # the default judge
    for (it, subj, act, p_subj, p_act), (s, a, probs) in zip(RECORDED, verdicts):
        assert (s, a) == (subj, act), it
        assert probs["subject"][s] == pytest.approx(p_subj, abs=2e-6) and probs["action"][a] == pytest.approx(p_act, abs=2e-6), it
        assert set(probs) == {"subject", "action"}
    assert verdicts[1][2]["action"]["salute"] == pytest.approx(0.299699, abs=2e-6)


def test_committed_judge_is_a_v2b_judge_without_context_heads():
    judge = load_judge()
    assert judge is load_judge(JUDGE_DIR) is load_judge(str(JUDGE_DIR))  # one cached copy however it is named
    assert judge.world == "v2b" and judge.heads == ("subject", "action") and not judge.has_context
    assert judge.scene_head is None and judge.outfit_head is None
    ims = [R.render(*it) for it, *_ in RECORDED[:3]]
    readings = read_images(ims, judge)
    assert [(r.subject, r.action, r.probs) for r in readings] == [(s, a, p) for s, a, p in judge_images(ims, judge)]
    for r, r2 in zip(readings, read_images(ims, judge, batch=2)):  # batches of 2 read (nearly: float sums) as one of 3
        assert (r.subject, r.action) == (r2.subject, r2.action)
        assert r2.probs["action"] == pytest.approx(r.probs["action"], abs=1e-5)
    assert all(r.scene is None and r.outfit is None and set(r.probs) == {"subject", "action"} for r in readings)
    with pytest.raises(ActionBenchError, match="no scene and outfit heads"):
        judge_context(ims, judge)
    ls, la = judge(render_set(2, 0)[0])  # the old 2-tuple unpacking
    assert ls.shape == (2, len(R.SUBJECTS)) and la.shape == (2, len(R.ACTIONS))
