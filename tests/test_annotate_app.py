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
