"""Does the paper's pattern appear on a v3 method table? (issue #23, item 6)

The paper's Table 1 (SD 2.1, ActionBench) shows three things, each read here against the
text prompt (the method that learns nothing, so every difference is what learning did):

1. **Pixel learners fail on the action**: Textual Inversion and ReVersion draw the action
   no more often than the text prompt (paper: 1.9% and 1.6% total).
2. **Custom Diffusion and P+ lose the subject or leak context**: their subject accuracy
   falls below the text prompt's, or their images take the exemplars' scene or outfit
   (paper: Custom Diffusion keeps 53.5% of subjects, P+ 80.2%).
3. **ADI learns the action and keeps the subject**: action accuracy above the text prompt's,
   subject accuracy and context leakage at the text prompt's level.

Per method, over every action and learning seed it ran, this pairs each image slot with the
text prompt's image of the same slot (the same subject, context and sampling seed; the text
prompt learns nothing, so its seed-0 image stands for every learning seed) and reports the
paired difference of action accuracy, subject accuracy and context leak, with 95%
cluster-bootstrap intervals over (action, learning seed) and the paired-bootstrap p.

    python -m evaluate.paper_pattern results/world-v3-table/demo.json   # -> results/world-v3-table/pattern.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluate.paired import paired_bootstrap

FIXED = ("sd", "controlnet")  # learn nothing: one image per slot, whatever the learning seed


def _slot_records(report: dict, method: str) -> dict[tuple, tuple]:
    """{(action, learning seed, slot index): (subject hit, action hit, context leak or None)} of ``method``."""
    out = {}
    for action, by in report["results"].items():
        r = by.get(method)
        if r is None:
            continue
        seeds = r.get("seeds", [0] * len(r["hits"]))
        leaks = r.get("leaks", [[None, None, None]] * len(r["hits"]))
        index: dict[int, int] = {}
        for (subject, act), sd, leak in zip(r["hits"], seeds, leaks):
            i = index.get(sd, 0)
            index[sd] = i + 1
            out[(action, sd, i)] = (int(subject), int(act), None if leak[2] is None else int(leak[2]))
    return out


def versus_reference(report: dict, method: str, reference: str = "sd", n_boot: int = 2000) -> dict:
    """Paired differences ``method - reference`` of subject, action and context leak (0-1),
    each ``{"diff", "low", "high", "p", "n"}``, plus both methods' rates on the paired slots.
    A reference in :data:`FIXED` pairs its seed-0 slot with every learning seed of ``method``."""
    mine, ref = _slot_records(report, method), _slot_records(report, reference)
    fixed = reference.split(":")[0] in FIXED
    pairs = []
    for (a, sd, i), rec in mine.items():
        other = ref.get((a, 0 if fixed else sd, i))
        if other is not None:
            pairs.append((f"{a}/{sd}", rec, other))
    out = {"runs": len({c for c, _, _ in pairs})}
    for k, name in enumerate(("subject", "action", "context_leak")):
        rows = [(c, x[k], y[k]) for c, x, y in pairs if x[k] is not None and y[k] is not None]
        if not rows:
            continue
        cl, a, b = zip(*rows)
        pb = paired_bootstrap(a, b, cl, n_boot)
        out[name] = {**pb, "n": len(rows), "method": sum(a) / len(a), "reference": sum(b) / len(b)}
    return out


def pattern_rows(report: dict, reference: str = "sd", n_boot: int = 2000) -> list[dict]:
    """One :func:`versus_reference` row per method of ``report`` other than ``reference``."""
    methods = list(dict.fromkeys(m for by in report["results"].values() for m in by))
    return [{"method": m, **versus_reference(report, m, reference, n_boot)} for m in methods if m != reference]


def _cell(d: dict | None) -> str:
    if d is None:
        return "-"
    p = "< 0.001" if d["p"] < 0.001 else f"{d['p']:.3f}"
    return f"{100 * d['method']:.1f}% ({100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}], p {p})"


def pattern_table(rows: list[dict], reference: str = "sd") -> str:
    """Markdown: per method its action, subject and context-leak rates on the slots paired
    with ``reference``, each with the paired difference, its interval and p."""
    lines = [f"| method | runs | action (vs {reference}) | subject (vs {reference}) | context leak (vs {reference}) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['runs']} | {_cell(r.get('action'))} | {_cell(r.get('subject'))} | "
                     f"{_cell(r.get('context_leak'))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", help="a merged table report (results/world-v3-table/demo.json)")
    p.add_argument("--reference", default="sd", help="the method every other is paired with (default sd, the text prompt)")
    p.add_argument("--out", help="markdown file to write (default pattern.md beside the report)")
    p.add_argument("--n-boot", type=int, default=2000)
    args = p.parse_args(argv)
    path = Path(args.report)
    if not path.exists():
        raise SystemExit(f"{path}: no such report (python -m evaluate.world_table merge --world v3 writes it)")
    report = json.loads(path.read_text())
    if not any(args.reference in by for by in report["results"].values()):
        raise SystemExit(f"{path}: no runs of --reference {args.reference!r}")
    rows = pattern_rows(report, args.reference, args.n_boot)
    actions = ", ".join(report["results"])
    text = (f"Each method paired slot by slot with {args.reference} on {actions}: rate on the paired slots "
            "(difference in points [95% cluster-bootstrap interval], paired-bootstrap p).\n\n"
            + pattern_table(rows, args.reference) + "\n")
    out = Path(args.out) if args.out else path.parent / "pattern.md"
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
