"""The human study's design: balanced assignment, the extra rater on disagreement, gold items,
attention checks, invite links on disk, the CLI and the export."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_annotate_app import fake_run

from actionbench.cli import main as cli
from annotate_app import invites
from evaluate.ratings import RatingStore, read_ratings
from evaluate.study import (
    CONFUSABLE,
    INSTRUCTIONS,
    Design,
    Item,
    assign,
    attention_checks,
    check_correct,
    extra_assignments,
    gold_items,
    interleave,
    n_checks,
    rater_quality,
    shown_exemplars,
)

# -- assignment ------------------------------------------------------------------------------


def _check_balanced(share, images, raters, k):
    per_image = {i: [r for r in raters if i in share[r]] for i in images}
    assert all(len(v) == k for v in per_image.values())  # K distinct raters per image
    sizes = [len(share[r]) for r in raters]
    assert max(sizes) - min(sizes) <= 1  # shares within one


def test_assignment_k_per_image_balanced_deterministic_and_mixed():
    images = [f"m/a/s{i}/0" for i in range(101)]
    raters = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]
    share = assign(images, raters, 3, seed=0)
    _check_balanced(share, images, raters, 3)
    assert share == assign(list(reversed(images)), list(reversed(raters)), 3, seed=0)  # input order does not matter
    assert share != assign(images, raters, 3, seed=1)  # the seed does
    together = {frozenset(p) for i in images for p in itertools.combinations([r for r in raters if i in share[r]], 2)}
    assert len(together) == math.comb(len(raters), 2)  # every pair of raters shares images (agreement needs it)
    assert assign(images, raters, None) == assign(images, raters, 7) == {r: sorted(images) for r in raters}
    assert assign(images, [], 2) == {}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), r=st.integers(1, 9), k=st.integers(1, 9), seed=st.integers(0, 3))
def test_assignment_is_balanced_for_any_size(n, r, k, seed):
    images, raters = [f"i{j}" for j in range(n)], [f"r{j}" for j in range(r)]
    _check_balanced(assign(images, raters, k, seed), images, raters, min(k, r))


def test_one_more_rater_once_k_ratings_disagree():
    raters = ["ann", "bob", "cy", "dee"]
    share = assign(["x", "y"], raters, 2, seed=0)
    first = [r for r in raters if "x" in share[r]]
    assert len(first) == 2

    def extras(answers):
        return {r: v for r, v in extra_assignments(share, answers, raters, 2, seed=0).items() if v}

    assert extras({"x": {first[0]: (True, True)}}) == {}  # one rating in: wait
    assert extras({"x": {first[0]: (True, True), first[1]: (True, True)}}) == {}  # K ratings, agreeing: done
    disagree = {"x": {first[0]: (True, True), first[1]: (True, False)}}  # they differ on the subject
    got = extras(disagree)
    assert len(got) == 1 and list(got.values()) == [["x"]]
    extra = next(iter(got))
    assert extra not in first  # somebody who has not rated it
    assert extras(disagree) == got == {extra: ["x"]}  # stable: the same rater every time it is asked
    assert extras({"x": {**disagree["x"], extra: (False, True)}}) == {}  # K + 1 ratings: no fourth
    assert extra_assignments(assign(["x"], raters, None), disagree, raters, None) == {r: [] for r in raters}  # no K


def test_the_app_queue_puts_the_extra_image_first(tmp_path, actionbench_root):
    from test_annotate_app import invite, queue

    run = fake_run(tmp_path, actionbench_root)
    invite(run, "ann", "bob", "cy", raters_per_image=2, gold_per_rater=0)
    store = RatingStore(run)
    image = "secret-method-a/sit/0/0"
    first = [r for r in ("ann", "bob", "cy") if any(it.item_id == image for it in queue(run, r))]
    for r, value in zip(first, (True, False)):
        store.answer(r, image, "action_ok", value)
        store.answer(r, image, "subject_ok", True)
    (third,) = {"ann", "bob", "cy"} - set(first)
    q = queue(run, third)
    assert q[0].item_id == image and q[0].extra
    assert all(not it.extra for r in first for it in queue(run, r))


# -- gold items and attention checks ---------------------------------------------------------

EXEMPLARS = {a: [(f"/bench/{a}/{i:02d}.jpg", "A person") for i in range(1, 6)] for a in
             ("sit", "squat", "meditate", "handstand", "salute", "gesture")}


def test_gold_items_answers_kinds_and_no_repeats():
    gold = gold_items(EXEMPLARS, ["sit", "salute"], 12, "ann", seed=0, wrong_subjects=["A panda"])
    assert gold == gold_items(EXEMPLARS, ["sit", "salute"], 12, "ann", seed=0, wrong_subjects=["A panda"])
    assert gold != gold_items(EXEMPLARS, ["sit", "salute"], 12, "bob", seed=0, wrong_subjects=["A panda"])
    assert len(gold) == 12 and len({g.path for g in gold}) == 12  # no photo twice for one rater
    for g in gold:
        kind, page, source = g.item_id.split("/")[1], g.action, g.path.split("/")[2]
        assert g.kind == "gold" and page in ("sit", "salute")
        if kind == "own":  # its own action, a person: yes / yes; the photo is not in the strip too
            assert (g.expected, source, g.subject, g.hide) == ((True, True), page, "A person", g.path)
        elif kind == "other":  # another action's photo on this action's page: no / yes
            assert g.expected == (False, True) and source != page and frozenset((page, source)) not in CONFUSABLE
        else:  # its own action, named as an animal: yes / no
            assert (g.expected, source, g.subject) == ((True, False), page, "A panda")
    assert {g.item_id.split("/")[1] for g in gold} == {"own", "other", "subject"}
    assert all(g.item_id.split("/")[1] != "subject" for g in gold_items(EXEMPLARS, ["sit"], 6, "ann"))  # no animals
    assert gold_items({}, ["sit"], 4, "ann") == []  # no benchmark on this machine: no gold


def test_gold_answers_are_scored_right_or_wrong():
    assert check_correct((True, True), (True, True)) is True
    assert check_correct((False, True), (True, True)) is False
    assert check_correct((True, False), (True, None)) is None  # not finished yet
    ratings = pd.DataFrame({"rater": ["ann", "bob", "ann", "bob"], "image_id": ["i1", "i1", "i2", "i2"],
                            "action_ok": [True, True, True, False], "subject_ok": [True, True, False, False]})
    checks = pd.DataFrame({"rater": ["ann"] * 4 + ["bob"], "item_id": ["gold/own/sit/01", "gold/other/sit/pray/02",
                                                                      "attention/0", "attention/1", "gold/own/sit/03"],
                           "kind": ["gold", "gold", "attention", "attention", "gold"],
                           "expected_action": [True, False, False, True, True],
                           "expected_subject": [True, True, False, True, True],
                           "action_ok": [True, True, False, True, True], "subject_ok": [True, True, False, None, True]})
    q = rater_quality(ratings, checks, ["ann", "bob", "cy"]).set_index("rater")
    assert q.loc["ann", ["rated", "gold_answered", "gold_right", "checks_answered", "checks_passed"]].tolist() == [2, 2, 1, 1, 1]
    assert q.loc["ann", "gold_accuracy"] == 0.5 and q.loc["bob", "gold_accuracy"] == 1.0
    assert q.loc["ann", "agreement_action"] == 0.5 and q.loc["ann", "agreement_subject"] == 1.0  # i2 action differs
    assert q.loc["ann", "shared_images"] == 2
    assert q.loc["cy", "rated"] == 0 and math.isnan(q.loc["cy", "gold_accuracy"])  # invited, nothing rated yet


def test_gold_and_checks_never_enter_the_tables(tmp_path, actionbench_root):
    from evaluate.tables import build_tables

    run = fake_run(tmp_path, actionbench_root)
    store = RatingStore(run)
    images = [f"secret-method-{m}/sit/{s}/0" for m in "ab" for s in range(2)]
    for i in images:
        store.answer("ann", i, "action_ok", i.startswith("secret-method-a"))
        store.answer("ann", i, "subject_ok", True)
    before = build_tables(run)["long"]
    for j in range(6):  # all-"no" answers on gold items and checks would pull every number down
        for q in ("action_ok", "subject_ok"):
            store.answer_check("ann", f"gold/own/sit/{j:02d}", "gold", (True, True), q, False)
            store.answer_check("ann", f"attention/{j}", "attention", (True, True), q, False)
    assert set(read_ratings(run).image_id) == set(images)  # gold answers live in their own table
    pd.testing.assert_frame_equal(build_tables(run)["long"], before)
    store.answer("ann", "gold/own/sit/01", "action_ok", False)  # even a gold id in the ratings table ...
    store.answer("ann", "gold/own/sit/01", "subject_ok", False)
    after = build_tables(run)
    pd.testing.assert_frame_equal(after["long"], before)  # ... is not a manifest image: left out
    human = before[(before.source == "human") & (before.action == "all") & (before.question == "action")]
    assert human.set_index("method").acc.to_dict() == {"secret-method-a": 1.0, "secret-method-b": 0.0}


@pytest.mark.parametrize("n,expected", [(0, 0), (1, 2), (49, 2), (100, 2), (101, 3), (500, 10)])
def test_at_least_two_attention_checks_per_rater(n, expected):
    assert n_checks(n, Design()) == expected


def test_attention_checks_catch_constant_raters_and_are_spread():
    images = [Item(f"m/sit/{i}/0", "image", f"images/{i}.png", "sit", "A panda") for i in range(200)]
    checks = attention_checks(images, 4, "ann", seed=0)
    assert len(checks) == 4 and len({c.expected for c in checks}) == 4  # the four yes/no patterns
    for pair in itertools.combinations(checks, 2):  # any two: "always yes" and "always no" each fail one
        assert any(c.expected != (True, True) for c in pair) and any(c.expected != (False, False) for c in pair)
    assert all(c.instruction == INSTRUCTIONS[c.expected] and c.kind == "attention" for c in checks)
    q = interleave(images, checks, "ann", seed=0)
    positions = [k for k, it in enumerate(q) if it.kind == "attention"]
    assert [p * 4 // len(q) for p in positions] == [0, 1, 2, 3]  # one in each quarter of the queue
    assert [it for it in q if it.kind == "image"] == images  # the images keep their order


def test_every_page_shows_one_exemplar_fewer():
    paths = [f"/b/sit/{i:02d}.jpg" for i in range(10)]
    gold = Item("gold/own/sit/03", "gold", paths[3], "sit", "A person", (True, True), hide=paths[3])
    assert shown_exemplars(paths, gold) == paths[:3] + paths[4:]
    pages = [Item(f"m/sit/{i}/0", "image", "x.png", "sit", "A panda") for i in range(20)]
    assert all(len(shown_exemplars(paths, p)) == 9 for p in pages)
    assert len({tuple(shown_exemplars(paths, p)) for p in pages}) > 1  # which one is left out varies


def test_a_study_queue_has_checks_and_gold_for_every_rater(tmp_path, actionbench_root):
    from test_annotate_app import invite, queue

    run = fake_run(tmp_path, actionbench_root)
    invite(run, "ann", "bob", "cy", raters_per_image=2, gold_per_rater=3)
    shares = {}
    for r in ("ann", "bob", "cy"):
        q = queue(run, r)
        kinds = [it.kind for it in q]
        assert kinds.count("attention") >= 2 and kinds.count("gold") == 3
        shares[r] = {it.item_id for it in q if it.kind == "image"}
        assert all(it.path.startswith(str(actionbench_root)) for it in q if it.kind == "gold")  # read where they are
    assert sorted(len(s) for s in shares.values()) == [2, 3, 3]  # balanced: 4 images x K = 2 over 3 raters
    assert sum(map(len, shares.values())) == 4 * 2  # 4 images x K = 2


# -- invite links on disk, the CLI, the export -----------------------------------------------


def test_raters_file_keeps_hashes_only_and_reissue_replaces_the_link(tmp_path, actionbench_root):
    run = fake_run(tmp_path, actionbench_root)
    tokens = invites.issue(run, ["alice", "bob"])
    text = (run / "raters.json").read_text()
    assert all(t not in text for t in tokens.values())  # no token on disk
    assert all(invites.token_hash(t) in text for t in tokens.values())
    assert invites.rater_for_token(run, tokens["alice"]) == "alice" and invites.rater_for_token(run, "nope") is None
    new = invites.issue(run, ["alice"])["alice"]
    assert invites.rater_for_token(run, tokens["alice"]) is None and invites.rater_for_token(run, new) == "alice"
    invites.revoke(run, ["bob"])
    assert invites.rater_for_token(run, tokens["bob"]) is None and invites.active_raters(run) == ["alice"]
    with pytest.raises(invites.ActionBenchError, match="no rater zed"):
        invites.revoke(run, ["zed"])
    with pytest.raises(invites.ActionBenchError, match="rater name"):
        invites.parse_names("al ice")


def test_cli_invites_lists_revokes_and_refuses_an_open_network_server(tmp_path, actionbench_root, capsys):
    from annotate_app.cli import command

    run = fake_run(tmp_path, actionbench_root)
    assert cli(["annotate", str(run), "--host", "0.0.0.0"]) == 2  # open mode: this machine only
    assert "no invited raters" in capsys.readouterr().err
    assert command(run)[command(run).index("--server.address") + 1] == "127.0.0.1"
    assert cli(["annotate", str(run), "--raters", "alice,bob", "--raters-per-image", "2",
                "--public-url", "https://rate.lab.example/"]) == 0
    out = capsys.readouterr().out
    links = dict(line.strip().split(": ", 1) for line in out.splitlines() if "?token=" in line)
    assert set(links) == {"alice", "bob"} and all(v.startswith("https://rate.lab.example/?token=") for v in links.values())
    assert invites.rater_for_token(run, links["alice"].split("=", 1)[1]) == "alice"
    assert invites.load_design(run).raters_per_image == 2
    assert cli(["annotate", str(run), "--raters", "alice", "--port", "9000"]) == 0
    out = capsys.readouterr().out
    assert "http://localhost:9000/?token=" in out and "re-issued" in out
    assert invites.rater_for_token(run, links["alice"].split("=", 1)[1]) is None  # the old link is dead
    assert cli(["annotate", str(run), "--revoke", "bob", "--list-raters"]) == 0
    out = capsys.readouterr().out
    assert "revoked" in out and "?token=" not in out
    assert all(t.split("=", 1)[1] not in out for t in links.values())
    table = out.splitlines()
    table = table[[k for k, line in enumerate(table) if line.startswith("rater ")][0] + 1:]
    listed = {line.split()[0]: line.split()[1] for line in table}
    assert listed == {"alice": "active", "bob": "revoked"}
    assert cli(["annotate", str(run), "--raters-per-image", "all"]) == 0
    assert invites.load_design(run).raters_per_image is None


def test_export_raw_answers_and_rater_quality(tmp_path, actionbench_root, capsys):
    run = fake_run(tmp_path, actionbench_root)
    invites.issue(run, ["ann", "bob", "cy"])
    store = RatingStore(run)
    images = [f"secret-method-{m}/sit/{s}/0" for m in "ab" for s in range(2)]
    for r, flip in (("ann", False), ("bob", True)):
        for k, i in enumerate(images):
            store.answer(r, i, "action_ok", (k == 0) != flip)
            store.answer(r, i, "subject_ok", True)
    store.answer_check("ann", "gold/own/sit/01", "gold", (True, True), "action_ok", True)
    store.answer_check("ann", "gold/own/sit/01", "gold", (True, True), "subject_ok", True)
    store.answer_check("ann", "attention/0", "attention", (False, False), "action_ok", True)
    store.answer_check("ann", "attention/0", "attention", (False, False), "subject_ok", False)
    store.answer_check("bob", "attention/1", "attention", (True, True), "action_ok", True)  # half answered
    invites.revoke(run, ["cy"])
    assert cli(["annotate", str(run), "--export", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["checks_raw.csv", "checks_raw.parquet", "raters_quality.csv", "ratings_raw.csv", "ratings_raw.parquet"]
    raw = pd.read_parquet(tmp_path / "out" / "ratings_raw.parquet")
    assert len(raw) == 8 and set(raw.rater) == {"ann", "bob"} and set(raw.method) == {"secret-method-a", "secret-method-b"}
    assert len(pd.read_csv(tmp_path / "out" / "ratings_raw.csv")) == 8
    checks = pd.read_parquet(tmp_path / "out" / "checks_raw.parquet").set_index("item_id")
    assert checks.loc["gold/own/sit/01", "correct"] and not checks.loc["attention/0", "correct"]
    assert pd.isna(checks.loc["attention/1", "correct"])
    q = pd.read_csv(tmp_path / "out" / "raters_quality.csv").set_index("rater")
    assert q.status.to_dict() == {"ann": "active", "bob": "active", "cy": "revoked"}
    assert q.loc["ann", ["rated", "gold_right", "checks_passed", "checks_failed"]].tolist() == [4, 1, 0, 1]
    assert q.loc["ann", "agreement_action"] == 0.0 and q.loc["ann", "agreement_subject"] == 1.0
    assert q.loc["cy", "rated"] == 0 and q.loc["ann", "assigned"] == 4
