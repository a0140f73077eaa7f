"""The report's figures and its per-image drill-down (raters and judges side by side, filters)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from evaluate.manifest import append_jsonl, manifest_shard, verdict_shard
from evaluate.plots import animal_and_human_names, leakage_rates, write_figures
from evaluate.ratings import RatingStore
from evaluate.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def make_run(tmp_path):
    """2 methods x 2 actions x (a man, a panda) x 1 image; two raters, the world judge.

    m1/sit/a_man: raters agree (yes/yes), judge agrees.   m1/sit/a_panda: raters disagree on action.
    m1/pray/a_man: raters agree no action, judge says yes (judge disagrees).  m2/...: judged only;
    m2/sit/a_panda is drawn as a man (leakage).
    """
    run = tmp_path / "run"
    rows = []
    for method in ("m1", "m2"):
        for action in ("sit", "pray"):
            for subject in ("A man", "A panda"):
                slug = subject.lower().replace(" ", "_")
                i = f"{method}/{action}/{slug}/0"
                path = f"images/{method}/{action}/{slug}.png"
                (run / path).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (32, 32), (40 * len(rows), 90, 120)).save(run / path)
                append_jsonl(manifest_shard(run, 0), dict(image_id=i, method=method, method_name=method, action=action,
                                                          subject=subject, index=0, seed=0, path=path, prompt=f"{subject} <A>",
                                                          time_s=0.0))
                rows.append(i)
    (run / "run.yaml").write_text("name: t\n")
    drawn = {"m1/sit/a_man/0": ("sit", "man"), "m1/sit/a_panda/0": ("sit", "panda"), "m1/pray/a_man/0": ("pray", "man"),
             "m1/pray/a_panda/0": ("stand", "panda"), "m2/sit/a_man/0": ("sit", "man"), "m2/sit/a_panda/0": ("sit", "man"),
             "m2/pray/a_man/0": ("wave", "man"), "m2/pray/a_panda/0": ("pray", "cat")}
    for i in rows:
        act, subj = drawn[i]
        asked_action, asked = i.split("/")[1], i.split("/")[2].split("_")[1]
        append_jsonl(verdict_shard(run, "world", 0), dict(image_id=i, judge="world", action_ok=act == asked_action,
                                                          subject_ok=subj == asked, predicted_action=act,
                                                          predicted_subject=subj, score=0.9, note=""))
    store = RatingStore(run)
    answers = {"ann": {"m1/sit/a_man/0": (1, 1), "m1/sit/a_panda/0": (1, 1), "m1/pray/a_man/0": (0, 1)},
               "bob": {"m1/sit/a_man/0": (1, 1), "m1/sit/a_panda/0": (0, 1), "m1/pray/a_man/0": (0, 1)}}
    for rater, given in answers.items():
        for i, (a, s) in given.items():
            store.answer(rater, i, "action_ok", bool(a))
            store.answer(rater, i, "subject_ok", bool(s))
    store.close()
    return run


def test_leakage_rates_by_hand(tmp_path):
    run = make_run(tmp_path)
    from evaluate.manifest import read_manifest, read_verdicts

    animals, humans = animal_and_human_names()
    assert "a panda" in animals and "man" in humans and "a man" not in animals
    r = leakage_rates(read_manifest(run), read_verdicts(run), animals, humans).set_index("method")
    # m1's two panda images are drawn as pandas; m2's: one as a man, one as a cat -> 1 of 2
    assert r.loc["m1", ["images", "human"]].tolist() == [2, 0] and r.loc["m2", ["images", "human"]].tolist() == [2, 1]
    assert r.loc["m2", "rate"] == 0.5 and r.loc["m2", "lo"] < 0.5 < r.loc["m2", "hi"]


def test_figures_are_drawn(tmp_path):
    run = make_run(tmp_path)
    figs = write_figures(run)
    assert set(figs) == {"accuracy", "heatmap", "leakage"}
    for path in figs.values():
        with Image.open(path) as im:
            assert im.size[0] > 300 and im.size[1] > 200
            assert np.asarray(im.convert("L")).std() > 5  # not a blank canvas


def test_figures_at_100_percent(tmp_path):
    # a Wilson bound computed at 100% can land a hair below the rate: the bars must still draw
    from evaluate.plots import accuracy_figure

    long = pd.DataFrame([dict(source="judge:world", method="m", action="all", question=q, images=48, n=48, acc=1.0,
                              lo=0.926, hi=1.0 - 1e-16) for q in ("action", "subject", "total")])
    assert accuracy_figure(long, tmp_path / "a.png").exists()


def test_no_figures_without_scores(tmp_path):
    run = tmp_path / "empty"
    append_jsonl(manifest_shard(run, 0), dict(image_id="m/sit/a_man/0", method="m", method_name="m", action="sit",
                                              subject="A man", index=0, seed=0, path="x.png", prompt="", time_s=0.0))
    assert write_figures(run) == {}


def _rows(html):
    return {m.group(3): (m.group(1), m.group(2))
            for m in re.finditer(r"<tr data-rdis='(\d)' data-jdis='(\d)'.*?<small>([^<]+)</small>", html)}


def test_drilldown_flags_disagreements(tmp_path):
    run = make_run(tmp_path)
    html = write_report(run, {}).read_text()
    assert "figures/accuracy.png" in html and "figures/heatmap.png" in html and "figures/leakage.png" in html
    assert "id=f-raters" in html and "id=f-judge" in html and "<h2>Agreement</h2>" in html
    rows = _rows(html)
    assert len(rows) == 8  # every judged image has a row
    assert rows["m1/sit/a_man/0"] == ("0", "0")
    assert rows["m1/sit/a_panda/0"] == ("1", "0")  # raters split on action: no majority, the judge is not counted
    assert rows["m1/pray/a_man/0"] == ("0", "1")  # both raters: no action; the judge: yes
    assert rows["m2/sit/a_panda/0"] == ("0", "0")  # nobody rated it: nothing to disagree with
    # each rater's answers are in the row, in the rater's column
    row = re.search(r"<tr[^>]*data-rdis='1'.*?</tr>", html, re.S).group(0)
    assert row.count("A<span class=ok>") >= 2 and "A<span class=no>" in row


def test_report_command(tmp_path, capsys):
    from actionbench.cli import main

    run = make_run(tmp_path)
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").exists() and (run / "figures" / "accuracy.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make install)")
def test_drilldown_filters_in_a_browser(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    run = make_run(tmp_path)
    report = write_report(run, {})
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(report.as_uri())
        visible = "[...document.querySelectorAll('#drill tbody tr')].filter(r => r.offsetParent !== null).length"
        assert page.evaluate(visible) == 8
        page.check("#f-raters")
        assert page.evaluate(visible) == 1 and page.inner_text("#f-count") == "1 shown"
        page.uncheck("#f-raters")
        page.check("#f-judge")
        assert page.evaluate(visible) == 1
        page.uncheck("#f-judge")
        page.select_option("#f-method", "m2")
        assert page.evaluate(visible) == 4
        browser.close()


def test_simulated_study_end_to_end(tmp_path):
    from evaluate import simulated_study as S

    items = S.labelled_items(16, seed=0)
    # the labels are what was drawn: right exactly when the drawn action/subject is the asked one
    assert (items.action_ok == (items.drawn_action == items.action)).all()
    assert (items.subject_ok == (items.subject.str.lower().str.replace("an ", "a ", regex=False)
                                 == items.drawn_subject.map(lambda k: "a " + k.replace("_", " ")))).all()
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (4000, 2))
    assert np.mean(S.simulate(truth, 0.1, rng) != truth) == pytest.approx(0.1, abs=0.015)
    run = tmp_path / "study"
    S.main(["--out", str(run), "--images-per-set", "16", "--bootstrap", "10", "--figures", str(tmp_path / "img")])
    panels = pd.read_csv(run / "panels.csv").set_index(["question", "error_rate"])
    assert panels.loc[("action", 0.0), "alpha"] == pytest.approx(1.0)
    assert panels.loc[("action", 0.0), "alpha"] > panels.loc[("action", 0.25), "alpha"]
    quality = pd.read_csv(run / "raters_quality.csv")
    assert set(quality.rater) == set(S.MIXED) and (quality.gold_answered == 12).all()
    assert (quality.checks_answered >= 2).all()
    assert (run / "report.html").exists() and (tmp_path / "img" / "study_alpha.png").exists()
    long = pd.read_csv(run / "agreement.csv")
    assert {"raters", "judge:world vs majority"} <= set(long.between)
