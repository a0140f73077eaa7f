"""The rating app under Streamlit's AppTest: protocol, hidden methods, progress, answers stored at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from annotate_app.store import RatingStore, rating_order, widget_key
from evaluate.manifest import append_jsonl, manifest_shard

APP = Path(__file__).resolve().parents[1] / "annotate_app" / "app.py"


def fake_run(root: Path, benchmark: Path, n_subjects: int = 2) -> Path:
    """A run folder with 2 methods x 1 action x n subjects x 1 image (coloured squares)."""
    run = root / "run"
    (run / "run.yaml").parent.mkdir(parents=True, exist_ok=True)
    (run / "run.yaml").write_text(f"name: t\nbenchmark: {benchmark}\n")
    for method in ("secret-method-a", "secret-method-b"):
        for s in range(n_subjects):
            subject = ["A panda", "Batman", "A dog"][s]
            rel = f"images/{method}/sit/{s}.png"
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (40 * s, 90, 200)).save(run / rel)
            append_jsonl(manifest_shard(run, 0), dict(image_id=f"{method}/sit/{s}/0", method=method, method_name=method,
                                                      action="sit", subject=subject, index=0, seed=0, path=rel,
                                                      prompt=f"{subject} <A>", time_s=0))
    return run


@pytest.fixture
def run_dir(tmp_path, actionbench_root, monkeypatch):
    run = fake_run(tmp_path, actionbench_root)
    monkeypatch.setenv("ACTIONBENCH_RUN_DIR", str(run))
    return run


def app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=60)


def test_rating_protocol(run_dir):
    at = app().run()
    assert not at.exception and "Type your name" in at.info[0].value
    at.sidebar.text_input(key="rater").input("ann").run()
    order = rating_order([f"secret-method-{m}/sit/{s}/0" for m in "ab" for s in range(2)], "ann")
    shown = " ".join(m.value for m in at.markdown)
    subject = "A panda" if order[0].endswith("/0/0") else "Batman"
    assert f"Subject: **{subject}**" in shown and "secret-method" not in shown  # method names hidden
    assert "0 of 4 rated" in at.sidebar.get("progress")[0].proto.text
    html = [m.value for m in at.markdown if "<img" in m.value]
    assert [h.count("<img") for h in html] == [10, 1] and "image 1 of 4" in html[1]  # exemplars, then the image
    at.button(key=widget_key("action_ok", "yes", order[0])).click().run()
    # stored at once, before the second question is answered
    assert RatingStore(run_dir).for_rater("ann") == {order[0]: {"action_ok": True, "subject_ok": None}}
    at.button(key=widget_key("subject_ok", "no", order[0])).click().run()
    assert RatingStore(run_dir).complete("ann") == {order[0]}
    assert "1 of 4 rated" in at.sidebar.get("progress")[0].proto.text
    assert any(b.key == widget_key("action_ok", "yes", order[1]) for b in at.button)  # next image, in the rater's order
    assert not any("secret" in (b.key or "") for b in at.button)  # keys end up in the page: no method names


def test_a_second_rater_and_a_fresh_session_continue(run_dir):
    store = RatingStore(run_dir)
    order = rating_order([f"secret-method-{m}/sit/{s}/0" for m in "ab" for s in range(2)], "bob")
    for i in order[:3]:
        store.answer("bob", i, "action_ok", True)
        store.answer("bob", i, "subject_ok", True)
    at = app().run()
    at.sidebar.text_input(key="rater").input("bob").run()
    assert "3 of 4 rated" in at.sidebar.get("progress")[0].proto.text
    at.button(key=widget_key("action_ok", "no", order[3])).click().run()
    at.button(key=widget_key("subject_ok", "yes", order[3])).click().run()
    assert "All 4 images rated" in at.success[0].value
    assert rating_order(order, "bob") == order and rating_order(order, "ann") != order  # per-rater shuffle


def test_next_leaves_an_image_for_later_and_every_button_names_its_key(run_dir):
    from annotate_app.app import KEYS, LABELS, NEXT_LABEL

    order = rating_order([f"secret-method-{m}/sit/{s}/0" for m in "ab" for s in range(2)], "cy")
    at = app().run()
    at.sidebar.text_input(key="rater").input("cy").run()
    labels = {b.key: b.label for b in at.button}
    assert labels == {widget_key("action_ok", "yes", order[0]): "Yes (1)", widget_key("action_ok", "no", order[0]): "No (2)",
                      widget_key("subject_ok", "yes", order[0]): "Yes (3)", widget_key("subject_ok", "no", order[0]): "No (4)",
                      widget_key("next", "later", order[0]): "Next (N)"}
    assert set(KEYS.values()) == set(LABELS.values()) | {NEXT_LABEL}
    assert any("1 / 2" in c.value and "N" in c.value for c in at.caption)  # the keys, shown
    at.button(key=widget_key("action_ok", "no", order[0])).click().run()
    at.button(key=widget_key("next", "later", order[0])).click().run()  # half answered, left for later
    assert RatingStore(run_dir).for_rater("cy") == {order[0]: {"action_ok": False, "subject_ok": None}}
    for image_id in order[1:]:  # the others first, in the rater's order
        assert any(b.key == widget_key("action_ok", "yes", image_id) for b in at.button)
        at.button(key=widget_key("action_ok", "yes", image_id)).click().run()
        at.button(key=widget_key("subject_ok", "yes", image_id)).click().run()
    assert any(b.key == widget_key("subject_ok", "yes", order[0]) for b in at.button)  # then the one left for later
    at.button(key=widget_key("subject_ok", "yes", order[0])).click().run()
    assert "All 4 images rated" in at.success[0].value
    assert RatingStore(run_dir).for_rater("cy")[order[0]] == {"action_ok": False, "subject_ok": True}


def test_not_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBENCH_RUN_DIR", str(tmp_path))
    at = app().run()
    assert "not a run folder" in at.error[0].value


# -- invite mode: links, refusals, the rater from the token ---------------------------------


def invite(run, *names, revoke=(), **design):
    """Invite raters (tokens by name), revoke some, and write the study's design."""
    from annotate_app import invites
    from evaluate.study import Design

    tokens = invites.issue(run, list(names))
    if revoke:
        invites.revoke(run, list(revoke))
    invites.save_design(run, Design(**design))
    return tokens


def queue(run, rater):
    from annotate_app import invites
    from annotate_app.plan import study_queue
    from evaluate.manifest import read_manifest

    return study_queue(run, read_manifest(run), RatingStore(run).frame(), rater, invites.active_raters(run),
                       invites.load_design(run))


def linked(token):
    at = app()
    if token is not None:
        at.query_params["token"] = token
    return at.run()


@pytest.mark.parametrize("case", ["no token", "wrong token", "revoked token"])
def test_invite_mode_refuses_a_missing_wrong_or_revoked_token(run_dir, case):
    tokens = invite(run_dir, "alice", "bob", revoke=["bob"])
    token = {"no token": None, "wrong token": tokens["alice"][:-2] + "xx", "revoked token": tokens["bob"]}[case]
    at = linked(token)
    assert not at.exception
    assert ("invite-only" if token is None else "not valid") in at.error[0].value
    assert not at.button and not at.text_input and not at.sidebar.text_input  # nothing to rate, no name to type
    assert not any("<img" in m.value for m in at.markdown)  # not even the images
    assert RatingStore(run_dir).frame().empty and RatingStore(run_dir).checks_frame().empty


def test_invite_link_names_the_rater_and_a_revoked_link_writes_nothing(run_dir):
    from annotate_app import invites

    tokens = invite(run_dir, "alice", "bob")
    first = queue(run_dir, "alice")[0]
    at = linked(tokens["alice"])
    assert "Rating as **alice**" in " ".join(m.value for m in at.sidebar.markdown)
    assert not at.sidebar.text_input  # no name field: the name comes from the link
    at.button(key=widget_key("action_ok", "yes", first.item_id)).click().run()
    store = RatingStore(run_dir)
    stored = store.for_rater("alice") if first.kind == "image" else store.checks_for_rater("alice")
    assert stored == {first.item_id: {"action_ok": True, "subject_ok": None}}
    assert set(store.frame().rater) | set(store.checks_frame().rater) == {"alice"}
    invites.revoke(run_dir, ["alice"])  # the page with alice's buttons is still open
    at.button(key=widget_key("subject_ok", "no", first.item_id)).click().run()
    stored = store.for_rater("alice") if first.kind == "image" else store.checks_for_rater("alice")
    assert stored == {first.item_id: {"action_ok": True, "subject_ok": None}}  # the click wrote nothing
    assert "not valid" in at.error[0].value and not at.button


def _page_text(at) -> str:
    """What the rater can read on the page, and the widget keys (they end up in it), images left out."""
    import re

    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [b.label for b in at.button]
    parts += [b.key or "" for b in at.button] + [m.value for m in at.sidebar.markdown]
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", " ".join(parts))


def test_a_whole_study_session_gold_and_checks_look_like_images(run_dir):
    """alice's queue: her 4 images, 4 gold items and 2 attention checks, all through the app.
    Gold pages have the same layout as image pages (one exemplar fewer on every page, the
    gold photo never in the strip); only attention checks carry an instruction; gold and
    check answers go to the checks table, never to ratings."""
    from evaluate.study import rater_quality

    tokens = invite(run_dir, "alice", "bob", gold_per_rater=4)
    items = queue(run_dir, "alice")
    assert sorted(it.kind for it in items) == ["attention"] * 2 + ["gold"] * 4 + ["image"] * 4
    at = linked(tokens["alice"])
    wrong_gold = next(it for it in items if it.kind == "gold")
    failed_check = next(it for it in items if it.kind == "attention")
    for n, item in enumerate(items):
        assert f"{n} of 10 rated" in at.sidebar.get("progress")[0].proto.text
        imgs = [m.value for m in at.markdown if "<img" in m.value]
        assert [h.count("<img") for h in imgs] == [9, 1] and f"image {n + 1} of 10" in imgs[1]
        strip = imgs[0]
        if item.hide:  # the gold photo is left out of the strip (as one photo is on every page)
            from annotate_app.app import _data_uri

            assert _data_uri(item.hide, 110) not in strip
        text = _page_text(at).lower()
        assert "gold" not in text and "attention" not in text and "secret" not in text
        assert ("for this image, answer" in text) == (item.kind == "attention")
        assert f"Subject: **{item.subject}**" in _page_text(at)
        action, subject = item.expected or (True, True)
        if item is wrong_gold or item is failed_check:
            action = not action
        at.button(key=widget_key("action_ok", "yes" if action else "no", item.item_id)).click().run()
        at.button(key=widget_key("subject_ok", "yes" if subject else "no", item.item_id)).click().run()
    assert "All 10 images rated" in at.success[0].value
    store = RatingStore(run_dir)
    ratings, checks = store.frame(), store.checks_frame()
    assert set(ratings.image_id) == {it.item_id for it in items if it.kind == "image"}
    assert sorted(checks.kind) == ["attention"] * 2 + ["gold"] * 4
    q = rater_quality(ratings, checks).set_index("rater").loc["alice"]
    assert (q.rated, q.gold_answered, q.gold_right, q.checks_passed, q.checks_failed) == (4, 4, 3, 1, 1)
