"""Appearance leakage on ActionWorld, graded: how human the judge finds the animals.

The table's leakage column counts animal prompts ("a panda <A>") that the world judge
reads as a human-like kind: the exemplars are all human-like, so such an image took
their looks with the action. On the v2b model that count is 0 for nearly every run, a
floor that hides any difference between methods. This module reads the same saved
images again and keeps the judge's *probability* instead of its verdict:

    human mass = P(man) + P(woman) + P(boy) + P(old man)   on an animal slot

averaged per run, with intervals and a paired bootstrap against the reference method
(the same slots: action, learning seed, subject, sampling seed), so a method that
pulls animals towards the exemplars' looks shows even when no animal is drawn as a man.

    python -m evaluate.leakage                       # results/world-table (every part)
    python -m evaluate.leakage --table results/demo  # one demo folder

Writes ``leakage.json`` and ``leakage.md`` into the table's folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from actionbench.demo import _load_images, _method_tag, reference_method
from actionbench.world import render as R


def human_mass(subject_probs: dict[str, float], humans=None) -> float:
    """The judge's probability that an image shows one of the human-like kinds."""
    humans = R.HUMANS if humans is None else humans
    return float(sum(p for kind, p in subject_probs.items() if kind in humans))


def slot_kinds(n_images: int, n_per_subject: int, subjects=None) -> list[str]:
    """The subject kind asked for in each image slot of a run (``n_per_subject`` slots per
    kind, in the world's subject order, as :func:`actionbench.demo.judge_learned` draws them)."""
    subjects = list(R.SUBJECTS if subjects is None else subjects)
    if n_images != n_per_subject * len(subjects):
        raise ValueError(f"{n_images} images is not {n_per_subject} per subject x {len(subjects)} subjects")
    return [subjects[i // n_per_subject] for i in range(n_images)]


def run_folders(table: Path, methods: list[str]):
    """(action, method, seed, folder) of every run whose images lie under ``table`` (its
    ``images/`` and every ``parts/*/images/``), the method spec read back from its folder tag."""
    by_tag = {_method_tag(m): m for m in methods}
    roots = [table / "images"] + sorted(table.glob("parts/*/images"))
    for root in roots:
        for folder in sorted(root.glob("*/*/seed*")):
            action, tag, seed = folder.parts[-3], folder.parts[-2], int(folder.parts[-1].removeprefix("seed"))
            if tag in by_tag:
                yield action, by_tag[tag], seed, folder


def measure(table: Path, report: dict) -> dict:
    """Per run of ``report`` (the table's ``demo.json``) whose images lie under ``table``, the
    human mass of every animal slot: ``{action: {method: {seed: [..]}}}``."""
    from actionbench.world.judge import judge_images, load_judge

    n = report["settings"]["n"]
    methods = list(dict.fromkeys(m for by in report["results"].values() for m in by))
    judge = load_judge()
    out: dict = {}
    for action, method, seed, folder in run_folders(table, methods):
        images = _load_images(folder)
        kinds = slot_kinds(len(images), n)
        verdicts = judge_images(images, judge)
        masses = [round(human_mass(v[2]["subject"]), 4) for k, v in zip(kinds, verdicts) if k in R.ANIMALS]
        out.setdefault(action, {}).setdefault(method, {})[str(seed)] = masses
    return out


def leakage_table(masses: dict, reference: str, n_boot: int = 2000) -> str:
    """Markdown: per method, the mean human mass on animal slots with a 95% interval
    (clusters: action x seed) and the paired difference to ``reference`` on the runs both have."""
    from evaluate.paired import bootstrap_ci, paired_bootstrap

    methods = list(dict.fromkeys(m for by in masses.values() for m in by))
    lines = ["| method | human mass on animals [95% CI] | animal images | - " + reference + " [95% CI] | p (bootstrap) |",
             "|---|---|---|---|---|"]
    for m in methods:
        x, cl, a, b, pcl = [], [], [], [], []
        for action, by in masses.items():
            for seed, v in by.get(m, {}).items():
                x += v
                cl += [f"{action}/{seed}"] * len(v)
                ref = by.get(reference, {}).get(seed)
                if ref is not None and len(ref) == len(v):
                    a += v
                    b += ref
                    pcl += [f"{action}/{seed}"] * len(v)
        mean, lo, hi = bootstrap_ci(x, cl, n_boot=n_boot)
        if m == reference or not a:
            diff, p = "-", "-"
        else:
            d = paired_bootstrap(a, b, pcl, n_boot=n_boot)
            diff, p = f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]", f"{d['p']:.3f}"
        lines.append(f"| {m} | {mean:.3f} [{lo:.3f}, {hi:.3f}] | {len(x)} | {diff} | {p} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="results/world-table", help="a demo or world-table folder with demo.json (default results/world-table)")
    args = p.parse_args(argv)
    table = Path(args.table)
    if not (table / "demo.json").exists():
        raise SystemExit(f"{table / 'demo.json'} is missing: give --table a folder made by actionbench demo or evaluate.world_table")
    report = json.loads((table / "demo.json").read_text())
    masses = measure(table, report)
    if not masses:
        raise SystemExit(f"no run images under {table} (images/ or parts/*/images/): they are written by the runs, not committed")
    ref = reference_method(report)
    md = leakage_table(masses, ref)
    (table / "leakage.json").write_text(json.dumps(masses))
    (table / "leakage.md").write_text("Judge's probability of a human-like kind on animal prompts (evaluate/leakage.py):\n\n" + md + "\n")
    print(md)


if __name__ == "__main__":
    main()
