"""The report pictures in docs/evaluation.md, made in a real headless browser from committed runs:

    python scripts/eval_report_screenshot.py

- docs/img/eval_report.png: the top of ``results/world-small/report.html`` (a real world run:
  figures, the judge's table, the first action's exemplars and grid);
- docs/img/eval_drilldown.png: the per-image drill-down of ``results/simulated-study/report.html``
  (raters simulated from exact labels, `python -m evaluate.simulated_study`) with the filter
  "judge disagrees with raters" on.

Regenerate the reports first (``actionbench report RUN``) if the code changed. Needs chromium and
playwright (``make install``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto((ROOT / "results/world-small/report.html").as_uri())
        page.wait_for_function("[...document.images].slice(0, 40).every(i => i.complete)")
        page.screenshot(path=str(ROOT / "docs/img/eval_report.png"))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((ROOT / "results/simulated-study/report.html").as_uri())
        page.check("#f-judge")
        page.locator("#drilldown").scroll_into_view_if_needed()
        page.evaluate("document.getElementById('drilldown').scrollIntoView()")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / "docs/img/eval_drilldown.png"))
        browser.close()
    print("wrote docs/img/eval_report.png, docs/img/eval_drilldown.png")


if __name__ == "__main__":
    main()
