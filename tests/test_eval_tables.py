"""Tables checked against numbers computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from evaluate.manifest import append_jsonl, manifest_shard, verdict_shard
from evaluate.ratings import RatingStore, read_ratings
from evaluate.tables import (
    accuracy_table,
    build_tables,
    format_tables,
    human_scores,
    summary,
    to_markdown,
    wilson,
)


def test_wilson_by_hand():
    # 2 of 4: centre 0.5, half-width z*sqrt(1/16 + z^2/64) / (1 + z^2/4) = 0.3498
    lo, hi = wilson(0.5, 4)
    assert lo == pytest.approx(0.1500, abs=1e-4) and hi == pytest.approx(0.8500, abs=1e-4)
    lo, hi = wilson(0.0, 10)  # 0 of 10: [0, z^2/(n+z^2)] = [0, 0.2775]
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0.5, 0))


def make_run(tmp_path):
    """Method m1: 4 images, m2: 2 images; two raters, one judge."""
    run = tmp_path / "run"
    ids = {"m1": [f"m1/sit/a_man/{k}" for k in range(2)] + [f"m1/pray/a_man/{k}" for k in range(2)],
           "m2": ["m2/sit/a_man/0", "m2/pray/a_man/0"]}
    for method, lst in ids.items():
        for i in lst:
            _, action, subj, k = i.split("/")
            append_jsonl(manifest_shard(run, 0), dict(image_id=i, method=method, method_name=method, action=action,
                                                      subject="A man", index=int(k), seed=int(k), path=f"{i}.png",
                                                      prompt="", time_s=0.0))
    store = RatingStore(run)
    # ann: m1 action 1,1,0,0 subject 1,1,1,0 ; m2 action 1,0 subject 1,1
    for i, (a, s) in zip(ids["m1"] + ids["m2"], [(1, 1), (1, 1), (0, 1), (0, 0), (1, 1), (0, 1)]):
        store.answer("ann", i, "action_ok", a)
        store.answer("ann", i, "subject_ok", s)
    # bob: m1 only; action 1,0,0,0 subject 1,1,1,1; one answer left half done (not counted)
    for i, (a, s) in zip(ids["m1"], [(1, 1), (0, 1), (0, 1), (0, 1)]):
        store.answer("bob", i, "action_ok", a)
        store.answer("bob", i, "subject_ok", s)
    store.answer("bob", ids["m2"][0], "action_ok", True)
    store.close()
    # judge: m1 action 1, 0, None, 0
    for i, a in zip(ids["m1"], [True, False, None, False]):
        append_jsonl(verdict_shard(run, "pose", 0), dict(image_id=i, judge="pose", action_ok=a, subject_ok=None,
                                                         predicted_action=None, predicted_subject=None, score=None,
                                                         note=""))
    (run / "run.yaml").write_text("name: t\n")
    return run, ids


def test_accuracy_by_hand(tmp_path):
    run, ids = make_run(tmp_path)
    t = build_tables(run)["long"].set_index(["source", "method", "action", "question"])
    # m1 action: image means (ann, bob) = 1, .5, 0, 0 -> 1.5/4 = 0.375
    assert t.loc[("human", "m1", "all", "action"), "acc"] == pytest.approx(0.375)
    # m1 subject: 1, 1, 1, .5 -> 0.875 ; total: (1,1)->1, (1&1, 0&1)->.5, 0, 0 -> 0.375
    assert t.loc[("human", "m1", "all", "subject"), "acc"] == pytest.approx(0.875)
    assert t.loc[("human", "m1", "all", "total"), "acc"] == pytest.approx(0.375)
    # per action: m1 sit action = (1 + .5)/2
    assert t.loc[("human", "m1", "sit", "action"), "acc"] == pytest.approx(0.75)
    # m2: only ann's full answers count (bob's half answer is ignored): action 1/2, subject 1, total 1/2
    assert t.loc[("human", "m2", "all", "action"), ["n", "acc"]].tolist() == [2, 0.5]
    assert t.loc[("human", "m2", "all", "total"), "acc"] == pytest.approx(0.5)
    lo, hi = t.loc[("human", "m2", "all", "action"), ["lo", "hi"]]
    assert (lo, hi) == pytest.approx(wilson(0.5, 2))
    # judge: None left out -> 1 of 3 ; subject never judged -> n 0
    assert t.loc[("judge:pose", "m1", "all", "action"), ["images", "n", "acc"]].tolist() == [4, 3, pytest.approx(1 / 3)]
    assert t.loc[("judge:pose", "m1", "all", "subject"), "n"] == 0


def test_agreement_by_hand(tmp_path):
    run, ids = make_run(tmp_path)
    tables = build_tables(run)
    ag = tables["agreement"].set_index(["between", "question"])
    # raters on action (ann and bob both answered m1's 4 images; m2 only ann): ann 1,1,0,0 bob 1,0,0,0
    # -> raw agreement 3/4; po .75 pa .5 pb .25 pe .5 -> kappa .5
    assert ag.loc[("raters", "action"), "raw_agreement"].startswith("0.750")
    assert ag.loc[("raters", "action"), "kappa_mean"].startswith("0.500")
    # pose vs the majority on action: verdicts on m1/sit/0, m1/sit/1, m1/pray/1; majority 1, tie (left out), 0;
    # judge 1, 0, 0 -> 2 of 2 right
    assert ag.loc[("judge:pose vs majority", "action"), "accuracy"].startswith("1.000")
    assert ag.loc[("judge:pose vs majority", "action"), "images"] == 2


def test_formats_and_paper_table(tmp_path):
    run, _ = make_run(tmp_path)
    tables = build_tables(run, source="human", paper=True)
    md = format_tables(tables, "md")
    assert "| human | m1 | 4 | 4 | 37.50 [" in md and "### action: sit" in md and "### agreement" in md
    assert "\\begin{tabular}" in format_tables(tables, "latex")
    assert format_tables(tables, "csv").splitlines()[0] == "source,method,action,question,images,n,acc,lo,hi"
    manifest = pd.DataFrame({"image_id": ["adi/sit/a/0"], "method": ["adi"], "action": ["sit"]})
    long = accuracy_table(manifest, {"human": pd.DataFrame({"action": [1.0], "subject": [1.0], "total": [1.0]},
                                                           index=pd.Index(["adi/sit/a/0"], name="image_id"))})
    s = summary(long, paper=True)
    assert s.iloc[-1].tolist() == ["paper (Table 1)", "adi", 736, 736, "60.33", "85.87", "51.09"]
    assert to_markdown(s).count("\n") == 3


def test_store_keeps_answers_across_connections(tmp_path):
    s = RatingStore(tmp_path)
    s.answer("ann", "x/0", "action_ok", True)
    s.close()  # as if the server died
    s2 = RatingStore(tmp_path)
    s2.answer("ann", "x/0", "subject_ok", False)
    assert s2.for_rater("ann") == {"x/0": {"action_ok": True, "subject_ok": False}}
    assert s2.complete("ann") == {"x/0"} and s2.raters() == ["ann"]
    r = read_ratings(tmp_path)
    assert len(r) == 1 and human_scores(r).loc["x/0", "total"] == 0.0
