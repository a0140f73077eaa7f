"""Agreement statistics checked on cases computed by hand, and on simulated raters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluate.agreement import (
    COLUMNS,
    agreement_report,
    alpha,
    answer_matrix,
    bootstrap,
    judge_statistics,
    kappa,
    kappa_mean,
    majority,
    pair_kappas,
    raw_agreement,
    run_agreement,
)

NA = np.nan


def test_raw_agreement_by_hand():
    # image 1: (1,1,0) -> 1 of 3 pairs agree; image 2: (1,0) -> 0 of 1; image 3: one answer, left out
    assert raw_agreement(np.array([[1, 1, 0], [1, 0, NA], [NA, NA, 1]])) == pytest.approx(1 / 6)
    assert raw_agreement(np.array([[1, 1], [0, 0]])) == 1.0
    assert math.isnan(raw_agreement(np.array([[1, NA], [NA, 0]])))  # no image with two answers


def test_kappa_by_hand():
    a = [1, 1, 0, 0, 1, 0]
    b = [1, 0, 0, 0, 1, 1]
    # po = 4/6; pa = pb = 1/2 -> pe = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert kappa(a, b) == pytest.approx(1 / 3)
    assert kappa(a, a) == pytest.approx(1.0)
    # one answer all through: pe = 1, kappa 0/0 -> NaN (undefined), never 0 or 1
    assert math.isnan(kappa([1, 1, 1], [1, 1, 1]))
    assert math.isnan(kappa([], []))


def test_alpha_by_hand():
    # two raters, rater 1 misses unit 4. Pairable units 1-3; coincidences o11 = 4, o01 = o10 = 1:
    # n = 6, n1 = 5, n0 = 1; Do = 2/6, De = 2 n0 n1 / (n (n-1)) = 10/30 -> alpha = 1 - 1 = 0
    m = np.array([[1, 1], [0, 1], [1, 1], [NA, 0]])
    assert alpha(m) == pytest.approx(0.0, abs=1e-12)
    # three raters: units (1,1,1) (0,0,0) (1,0,-) (0,0,1): o11 = 3, o00 = 4, o01 = o10 = 2 (unit 4 with
    # weight 1/(3-1)); n = 11, n1 = 5, n0 = 6; Do = 4/11, De = 60/110 -> alpha = 1 - (4/11)/(6/11) = 1/3
    m = np.array([[1, 1, 1], [0, 0, 0], [1, 0, NA], [0, 0, 1]])
    assert alpha(m) == pytest.approx(1 / 3)
    assert alpha(np.array([[1, 1], [0, 0], [1, 1]])) == pytest.approx(1.0)
    assert math.isnan(alpha(np.array([[1, 1], [1, 1]])))  # no variation: undefined
    assert math.isnan(alpha(np.array([[1, NA], [NA, 0]])))  # nothing pairable


def test_pairs_and_their_mean():
    m = np.array([[1, 1, NA], [0, 1, 0], [1, 1, 1], [0, 0, 0], [NA, NA, 1]])
    pairs = {(i, j): (n, k, agree) for i, j, n, k, agree in pair_kappas(m)}
    # raters 0, 1 on units 1-4: (1,1) (0,1) (1,1) (0,0): po 3/4, p0 = 1/2, p1 = 3/4 -> pe = 1/2, kappa 1/2
    assert pairs[(0, 1)][0] == 4 and pairs[(0, 1)][1] == pytest.approx(0.5) and pairs[(0, 1)][2] == 0.75
    # raters 0, 2 on units 2-4: (0,0) (1,1) (0,0): kappa 1
    assert pairs[(0, 2)][:2] == (3, pytest.approx(1.0))
    # raters 1, 2 on units 2-4: (1,0) (1,1) (0,0): po 2/3, p1 = 2/3 vs 1/3 -> pe = 2/9 + 2/9 = 4/9, kappa 2/5
    assert pairs[(1, 2)][1] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    assert kappa_mean(m) == pytest.approx((0.5 + 1 + 0.4) / 3)


def test_majority_leaves_ties_out():
    m = np.array([[1, 1, 0], [1, 0, NA], [NA, NA, NA], [0, 0, 1]])
    assert np.array_equal(majority(m), np.array([1.0, NA, NA, 0.0]), equal_nan=True)


def test_judge_against_the_majority():
    m = np.array([[1, 1, 0], [1, 0, NA], [0, 0, 0], [0, 0, 1], [1, 1, 1]])  # majority 1, tie, 0, 0, 1
    j = np.array([1, 0, 1, 0, NA])  # last: cannot tell -> left out
    s = judge_statistics(j, m)
    # images 1, 3, 4: judge 1, 1, 0 vs majority 1, 0, 0 -> 2/3
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["kappa"] == pytest.approx(kappa([1, 1, 0], [1, 0, 0]))
    assert s["alpha"] == pytest.approx(alpha(np.array([[1, 1], [1, 0], [0, 0]])))
    assert s["alpha_share"] == pytest.approx(s["alpha"] / alpha(m))
    assert all(math.isnan(v) for v in judge_statistics(np.array([NA, NA]), np.array([[1, 0], [1, 1]])).values())


def test_answer_matrix_total_is_both_right():
    r = pd.DataFrame({"rater": ["a", "a", "b", "b"], "image_id": ["i1", "i2", "i1", "i2"],
                      "action_ok": [1, 1, 0, None], "subject_ok": [1, 0, 1, 1]})
    t = answer_matrix(r, "total")
    assert t.loc["i1", "a"] == 1.0 and t.loc["i2", "a"] == 0.0 and t.loc["i1", "b"] == 0.0
    assert math.isnan(t.loc["i2", "b"])  # action unanswered -> total unknown
    with pytest.raises(ValueError, match="unknown question"):
        answer_matrix(r, "style")


def test_bootstrap_interval_brackets_the_point():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 200).astype(float)
    m = np.stack([np.where(rng.random(200) < 0.15, 1 - truth, truth) for _ in range(3)], 1)
    point = alpha(m)
    ci = bootstrap(lambda x: {"alpha": alpha(x)}, (m,), n=300)["alpha"]
    assert ci[0] < point < ci[1] and ci[1] - ci[0] < 0.3
    assert bootstrap(lambda x: {"alpha": alpha(x)}, (m,), n=300)["alpha"] == ci  # seeded: the same twice
    assert bootstrap(lambda x: {"alpha": alpha(x)}, (m,), n=0) == {}


def simulated_ratings(error_rates, n_images=300, seed=0):
    """Raters who flip the true answer with the given probabilities; a judge that is always right."""
    rng = np.random.default_rng(seed)
    ids = [f"m{k % 2}/sit/a_man/{k}" for k in range(n_images)]
    truth = rng.integers(0, 2, (n_images, 2))
    rows = []
    for r, e in enumerate(error_rates):
        flip = rng.random((n_images, 2)) < e
        ans = np.where(flip, 1 - truth, truth)
        rows += [dict(rater=f"r{r}", image_id=i, action_ok=int(a), subject_ok=int(s)) for i, (a, s) in zip(ids, ans)]
    manifest = pd.DataFrame({"image_id": ids, "method": [i.split("/")[0] for i in ids]})
    verdicts = pd.DataFrame({"image_id": ids, "judge": "oracle", "action_ok": truth[:, 0].astype(bool),
                             "subject_ok": truth[:, 1].astype(bool)})
    return manifest, pd.DataFrame(rows), verdicts


def test_alpha_falls_as_raters_err_more():
    alphas = []
    for e in (0.0, 0.1, 0.25):
        manifest, ratings, verdicts = simulated_ratings([e, e, e])
        rep = agreement_report(manifest, ratings, verdicts, bootstrap_samples=0)
        sel = rep[(rep.method == "all") & (rep.question == "action") & (rep.between == "raters")].set_index("statistic")
        alphas.append(sel.loc["alpha", "value"])
    assert alphas[0] == pytest.approx(1.0) and alphas[0] > alphas[1] > alphas[2]
    # independent flips at rate e: agreement of two raters 1 - 2e(1-e); on balanced labels alpha ~ (1-2e)^2
    assert alphas[1] == pytest.approx(0.64, abs=0.08) and alphas[2] == pytest.approx(0.25, abs=0.1)


def test_report_per_method_and_judge(tmp_path):
    manifest, ratings, verdicts = simulated_ratings([0.1, 0.1, 0.1], n_images=120)
    rep = agreement_report(manifest, ratings, verdicts, bootstrap_samples=50)
    assert list(rep.columns) == COLUMNS
    assert set(rep.method) == {"all", "m0", "m1"} and set(rep.question) == {"action", "subject", "total"}
    j = rep[(rep.method == "all") & (rep.question == "action") & (rep.between == "judge:oracle vs majority")]
    j = j.set_index("statistic")
    # an always-right judge agrees with a 3-rater majority more than one rater agrees with another
    assert j.loc["accuracy", "value"] > 0.9 and j.loc["alpha_share", "value"] > 1
    assert (j.ci_low <= j.value + 1e-12).all() and (j.value <= j.ci_high + 1e-12).all()
    r = rep[(rep.method == "m0") & (rep.between == "raters") & (rep.question == "action")]
    assert (r.images == 60).all() and (r.raters == 3).all()


def test_cli_writes_the_report(tmp_path, capsys):
    from actionbench.cli import main
    from evaluate.manifest import append_jsonl, manifest_shard
    from evaluate.ratings import RatingStore

    run = tmp_path / "run"
    manifest, ratings, _ = simulated_ratings([0.0, 0.25], n_images=40)
    for i in manifest.image_id:
        m, action, subj, k = i.split("/")
        append_jsonl(manifest_shard(run, 0), dict(image_id=i, method=m, method_name=m, action=action, subject="A man",
                                                  index=int(k), seed=int(k), path=f"{i}.png", prompt="", time_s=0.0))
    (run / "run.yaml").write_text("name: t\n")
    with pytest.raises(Exception, match="nobody has rated"):
        run_agreement(run)
    store = RatingStore(run)
    for r in ratings.itertuples():
        store.answer(r.rater, r.image_id, "action_ok", r.action_ok)
        store.answer(r.rater, r.image_id, "subject_ok", r.subject_ok)
    store.close()
    assert main(["agreement", str(run), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "### overall" in out and "### rater pairs" in out and "alpha" in out
    long = pd.read_csv(run / "agreement.csv")
    assert list(long.columns) == COLUMNS and (run / "agreement_pairs.csv").exists()
    pairs = pd.read_csv(run / "agreement_pairs.csv")
    assert set(pairs.question) == {"action", "subject", "total"} and (pairs.images == 40).all()
