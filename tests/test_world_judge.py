"""The committed ActionWorld judge loads and is accurate on fresh held-out renders."""

from actionbench.world import render as R
from actionbench.world.judge import judge_images, load_judge


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
