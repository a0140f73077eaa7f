"""The rating app's picture in docs/evaluation.md, made in a real headless browser on
ActionWorld images only (ActionBench's photos are CC BY-NC-ND and never go into the repo).

    python scripts/eval_app_screenshot.py --out docs/img/eval_app.png

A run folder is built in a temporary directory: the world benchmark's ``sit`` exemplars, and
4 images the world model drew in the committed world run (text prompt and ADI, seed 0, an old
man and a panda: ``results/world-small/images/{sd,adi}/sit``). The app is served with
``actionbench annotate``'s command line and photographed at its first image for rater "ann".
Needs chromium and playwright (``make install``).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from actionbench.world.benchmark import BENCH_DIR
from annotate_app.cli import free_port, start_server, stop_server
from evaluate.manifest import append_jsonl, manifest_shard

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "results/world-small/images"
SUBJECTS = {3: "An old man", 7: "A panda"}  # index -> name (the index only names the copied file)
METHODS = {"sd": "method-1", "adi": "method-2"}


def build_run(root: Path) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    (run / "run.yaml").write_text(f"name: app-screenshot\nbenchmark: {BENCH_DIR}\n")
    for folder, method in METHODS.items():
        for index, subject in SUBJECTS.items():
            rel = f"images/{method}/sit/{index}.png"
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(IMAGES / folder / "sit" / f"{subject.lower().replace(' ', '_')}_0.png", run / rel)
            append_jsonl(manifest_shard(run, 0), dict(image_id=f"{method}/sit/{index}/0", method=method, method_name=method,
                                                      action="sit", subject=subject, index=0, seed=0, path=rel,
                                                      prompt=f"{subject} <A>", time_s=0))
    return run


def main() -> None:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/img/eval_app.png")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = p.parse_args()
    if not args.chromium:
        raise SystemExit("chromium not found: make install, or --chromium PATH")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(build_run(Path(tmp)), port)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_label("Your name").fill("ann")
                page.get_by_label("Your name").press("Enter")
                page.get_by_text("image 1 of 4").wait_for()
                page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", state="attached")
                page.wait_for_function("[...document.images].length >= 11 && [...document.images].every(i => i.naturalWidth > 0)")
                page.screenshot(path=args.out, full_page=True)
                browser.close()
        finally:
            stop_server(server)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
