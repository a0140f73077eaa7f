"""The rating app in a real headless browser: rate, kill the server, restart, nothing lost;
rate with the keyboard only; rate through an invite link, and a bad link refused.

Needs Debian's chromium and the playwright package (``make install`` installs both);
skipped cleanly without them.
"""

from __future__ import annotations

import shutil

import pytest
from test_annotate_app import fake_run

from annotate_app.cli import free_port, start_server, stop_server
from annotate_app.store import RatingStore, rating_order

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make install)")]


def settled(page):
    """Wait for the script run to finish: Streamlit then drops the last run's stale elements (the
    last image's buttons), so a click or key press reaches this image's."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", state="attached")


def rate(page, name, answers):
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Your name").press("Enter")
    for i, (action, subject) in enumerate(answers):
        page.get_by_text("Does the image show the action").wait_for()
        page.get_by_text(f"{i} of 4 rated").wait_for()
        page.get_by_text(f"image {i + 1} of 4").wait_for()
        settled(page)
        # the page has re-rendered for this image (no stale buttons of the last one): no answer shown yet
        page.wait_for_function("!document.body.innerText.includes('(your answer:')")
        if i == 0:  # every image loaded (exemplars and the generated one)
            page.wait_for_function("[...document.images].length >= 11 && [...document.images].every(i => i.naturalWidth > 0)")
        buttons = page.get_by_role("button")
        buttons.filter(has_text="Yes" if action else "No").first.click()
        page.get_by_text("(your answer:").first.wait_for()
        buttons.filter(has_text="Yes" if subject else "No").last.click()
        page.get_by_text(f"{i + 1} of 4 rated").wait_for()


def test_rate_kill_restart_nothing_lost(tmp_path, actionbench_root):
    playwright = pytest.importorskip("playwright.sync_api")
    run_dir = fake_run(tmp_path, actionbench_root)
    port = free_port()
    server = start_server(run_dir, port)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}")
            rate(page, "ann", [(True, False), (False, True)])
            stop_server(server)  # the tab stays open, the server dies without warning
            assert RatingStore(run_dir).complete("ann") and len(RatingStore(run_dir).complete("ann")) == 2
            server = start_server(run_dir, port)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_label("Your name").fill("ann")
            page.get_by_label("Your name").press("Enter")
            page.get_by_text("2 of 4 rated").wait_for()  # nothing lost: the app continues at image 3
            browser.close()
    finally:
        stop_server(server)
    answers = RatingStore(run_dir).for_rater("ann")
    assert sorted((v["action_ok"], v["subject_ok"]) for v in answers.values()) == [(False, True), (True, False)]


def _answers(run_dir, rater):
    return {k: (v["action_ok"], v["subject_ok"]) for k, v in RatingStore(run_dir).for_rater(rater).items()}


def test_keyboard_only_rating(tmp_path, actionbench_root):
    """1 / 2 and 3 / 4 answer the two questions, N moves on; keys typed into the name field are text."""
    playwright = pytest.importorskip("playwright.sync_api")
    run_dir = fake_run(tmp_path, actionbench_root)
    order = rating_order([f"secret-method-{m}/sit/{s}/0" for m in "ab" for s in range(2)], "kim")
    port = free_port()
    server = start_server(run_dir, port)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_label("Your name").fill("kim")
            page.get_by_label("Your name").press("Enter")  # the focus stays in the field ...
            page.get_by_text("Does the image show the action").wait_for()
            settled(page)
            page.wait_for_function("typeof window.__actionbenchKeys === 'function'")  # ... until the key script takes it off
            page.get_by_text("Keys: 1 / 2").wait_for()  # the shortcuts are shown

            def fresh_image(rated):
                page.get_by_text(f"{rated} of 4 rated").wait_for()
                page.wait_for_function("!document.body.innerText.includes('(your answer:')")  # this run's output ...
                settled(page)  # ... all of it

            def shown(text):
                page.get_by_text(text).wait_for()
                settled(page)

            fresh_image(0)
            page.keyboard.press("1")  # action: yes
            shown("(your answer: yes)")
            assert _answers(run_dir, "kim") == {order[0]: (True, None)}
            page.keyboard.press("4")  # subject: no -> both answered, the next image comes
            fresh_image(1)
            assert _answers(run_dir, "kim") == {order[0]: (True, False)}

            page.keyboard.press("2")  # image 2, action: no
            shown("(your answer: no)")
            page.keyboard.press("n")  # next: image 2 is left for later
            fresh_image(1)
            page.keyboard.press("3")  # so this answer is image 3's
            shown("(your answer: yes)")
            assert _answers(run_dir, "kim") == {order[0]: (True, False), order[1]: (False, None), order[2]: (None, True)}

            name = page.get_by_label("Your name")
            name.click()
            name.press("4")  # typed into the field, not an answer
            name.press("Backspace")
            name.blur()
            page.keyboard.press("1")
            fresh_image(2)  # image 3 complete: "4" above did not answer its subject question, "1" did the action
            assert _answers(run_dir, "kim")[order[2]] == (True, True)
            page.keyboard.press("ArrowRight")  # next again: image 4 is left for later too, image 2 comes back
            shown("(your answer: no)")
            page.keyboard.press("3")
            fresh_image(3)
            browser.close()
    finally:
        stop_server(server)
    assert _answers(run_dir, "kim") == {order[0]: (True, False), order[1]: (False, True), order[2]: (True, True)}


def test_invite_link_rates_as_its_rater_and_a_bad_link_is_refused(tmp_path, actionbench_root):
    """Invite mode in the browser: a wrong token gets a refusal and no buttons; the link rates
    one item with the keys, stored under the link's rater and nobody else."""
    from test_annotate_app import invite, queue

    playwright = pytest.importorskip("playwright.sync_api")
    run_dir = fake_run(tmp_path, actionbench_root)
    tokens = invite(run_dir, "alice", "bob")
    first = queue(run_dir, "alice")[0]
    total = len(queue(run_dir, "alice"))
    port = free_port()
    server = start_server(run_dir, port)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/?token=not-a-token")
            page.get_by_text("This link is not valid").wait_for()
            settled(page)
            assert page.get_by_role("button", name="Yes (1)").count() == 0 and page.get_by_label("Your name").count() == 0
            page.goto(f"http://127.0.0.1:{port}/?token={tokens['alice']}")
            page.get_by_text("Rating as").wait_for()
            page.get_by_text(f"0 of {total} rated").wait_for()
            settled(page)
            page.wait_for_function("typeof window.__actionbenchKeys === 'function'")
            page.keyboard.press("2")  # action: no
            page.get_by_text("(your answer: no)").wait_for()
            settled(page)
            page.keyboard.press("3")  # subject: yes -> the next item comes
            page.get_by_text(f"1 of {total} rated").wait_for()
            browser.close()
    finally:
        stop_server(server)
    store = RatingStore(run_dir)
    stored = store.for_rater("alice") if first.kind == "image" else store.checks_for_rater("alice")
    assert stored == {first.item_id: {"action_ok": False, "subject_ok": True}}
    assert set(store.frame().rater) | set(store.checks_frame().rater) == {"alice"}
