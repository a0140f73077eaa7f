"""The rating app in a real headless browser: rate, kill the server, restart, nothing lost.

Needs Debian's chromium and the playwright package (``make install`` installs both);
skipped cleanly without them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from annotate_app.cli import command
from annotate_app.store import RatingStore

from test_annotate_app import fake_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make install)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir, port):
    proc = subprocess.Popen(command(run_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("streamlit did not start")


def kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the server's own process group (start_new_session), no cleanup
    proc.wait()


def rate(page, name, answers, screenshot=None):
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Your name").press("Enter")
    for i, (action, subject) in enumerate(answers):
        page.get_by_text("Does the image show the action").wait_for()
        page.get_by_text(f"{i} of 4 rated").wait_for()
        page.get_by_text(f"image {i + 1} of 4").wait_for()
        # the page has re-rendered for this image (no stale buttons of the last one): no answer shown yet
        page.wait_for_function("!document.body.innerText.includes('(your answer:')")
        if i == 0:  # every image loaded (exemplars and the generated one)
            page.wait_for_function("[...document.images].length >= 11 && [...document.images].every(i => i.naturalWidth > 0)")
            if screenshot:
                page.screenshot(path=screenshot, full_page=True)
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
    shot = os.environ.get("ACTIONBENCH_SCREENSHOT")  # docs/img/eval_app.png is made this way
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}")
            rate(page, "ann", [(True, False), (False, True)], screenshot=shot)
            kill(server)  # the tab stays open, the server dies without warning
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
        kill(server)
    answers = RatingStore(run_dir).for_rater("ann")
    assert sorted((v["action_ok"], v["subject_ok"]) for v in answers.values()) == [(False, True), (True, False)]
