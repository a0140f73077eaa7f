"""Accuracy tables: action, subject and total accuracy per method, per action and overall.

Sources: ``human`` (the annotation app's ratings) and ``judge:NAME`` (a judge's verdicts).

Human scores. Each rater's answer is a 0/1; an image's score is the mean over the raters
who answered it (one rater: 0 or 1). Accuracy is the mean over rated images; "total" is
the per-rater "both right", averaged the same way (the paper's definition).

Judge scores. An image a judge cannot tell about (``None``) is left out of that judge's
accuracy; ``n`` says how many images counted. Total needs both answers.

95% intervals: Wilson score interval for a proportion with ``n`` = number of images
(exact coverage for one rater; with several raters, image scores are averages and the
interval is a little conservative).

Agreement (:mod:`evaluate.agreement`, over all methods): between raters, raw agreement,
Cohen's kappa (averaged over rater pairs) and Krippendorff's alpha; between each judge and
the raters' majority answer, accuracy, kappa, alpha and alpha as a share of the raters'
alpha; 95% bootstrap intervals over images. ``actionbench agreement RUN`` gives it per
method and per rater pair.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from actionbench.errors import ActionBenchError

Z95 = 1.959963984540054
QUESTIONS = ("action", "subject", "total")

# The paper's Table 1 (%, action / subject / total); keys are this suite's method names.
PAPER_TABLE1 = {
    "sd": ("Stable Diffusion (action written as text)", 30.71, 84.51, 27.17),
    "controlnet": ("ControlNet (OpenPose)", 41.30, 42.66, 19.29),
    "dreambooth": ("DreamBooth", 2.45, 95.65, 2.45),
    "textual-inversion": ("Textual Inversion", 2.17, 86.14, 1.90),
    "reversion": ("ReVersion", 1.63, 84.51, 1.63),
    "custom-diffusion": ("Custom Diffusion", 29.62, 53.53, 7.07),
    "pplus": ("P+", 26.90, 80.16, 20.92),
    "adi": ("ADI", 60.33, 85.87, 51.09),
}


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` trials."""
    if n == 0 or p != p:
        return (float("nan"), float("nan"))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def human_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """image_id -> action, subject, total (mean over raters), only fully answered ratings."""
    r = ratings.dropna(subset=["action_ok", "subject_ok"]).copy()
    r["action"] = r.action_ok.astype(float)
    r["subject"] = r.subject_ok.astype(float)
    r["total"] = (r.action_ok & r.subject_ok).astype(float)
    return r.groupby("image_id")[list(QUESTIONS)].mean()


def judge_scores(verdicts: pd.DataFrame, judge: str) -> pd.DataFrame:
    """image_id -> action, subject, total (NaN where the judge cannot tell)."""
    v = verdicts[verdicts.judge == judge].set_index("image_id")
    a = v.action_ok.astype("Float64").astype(float)
    s = v.subject_ok.astype("Float64").astype(float)
    total = (a * s).where(a.notna() & s.notna())
    return pd.DataFrame({"action": a, "subject": s, "total": total})


def sources(run_dir: str | Path, which: str = "all") -> dict[str, pd.DataFrame]:
    """Per-image scores by source name (``human``, ``judge:pose``, ...)."""
    from .manifest import read_verdicts
    from .ratings import read_ratings

    which = "all" if which == "both" else which
    out = {}
    if which in ("all", "human"):
        ratings = read_ratings(run_dir)
        if len(ratings):
            out["human"] = human_scores(ratings)
    if which in ("all", "judges") or which.startswith("judge:"):
        verdicts = read_verdicts(run_dir)
        for judge in sorted(set(verdicts.judge)):
            if which in ("all", "judges") or which == f"judge:{judge}":
                out[f"judge:{judge}"] = judge_scores(verdicts, judge)
    if not out:
        raise ActionBenchError(f"{run_dir}: no ratings or judge verdicts ({which}) to tabulate; rate with `actionbench annotate` or judge with `actionbench judge`")
    return out


# -- the accuracy table ----------------------------------------------------------------


def accuracy_table(manifest: pd.DataFrame, scores: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table: source, method, action ("all" = overall), question, images, n (judged), acc, lo, hi (fractions)."""
    rows = []
    methods = list(dict.fromkeys(manifest.method))
    actions = list(dict.fromkeys(manifest.action))
    for source, per_image in scores.items():
        joined = manifest[["image_id", "method", "action"]].join(per_image.add_prefix("score_"), on="image_id")
        for method in methods:
            m = joined[joined.method == method]
            for action in actions + ["all"]:
                part = m if action == "all" else m[m.action == action]
                for q in QUESTIONS:
                    vals = part[f"score_{q}"].dropna()
                    n = int(len(vals))
                    acc = float(vals.mean()) if n else float("nan")
                    lo, hi = wilson(acc, n)
                    rows.append(dict(source=source, method=method, action=action, question=q, images=int(len(part)), n=n,
                                     acc=acc, lo=lo, hi=hi))
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, action: str = "all", paper: bool = False) -> pd.DataFrame:
    """Wide view: one row per (source, method), 'acc [lo, hi]' in % for action / subject / total."""
    t = table[table.action == action]
    out = []  # n: images with an answer (rated, or judged with a verdict); images: all generated
    for (source, method), g in t.groupby(["source", "method"], sort=False):
        first = g[g.question == "action"].iloc[0]
        row = {"source": source, "method": method, "images": int(first.images), "n": int(first.n)}
        for q in QUESTIONS:
            r = g[g.question == q].iloc[0]
            row[q] = "-" if r.n == 0 else f"{100 * r.acc:.2f} [{100 * r.lo:.1f}, {100 * r.hi:.1f}]"
        out.append(row)
    if paper and action == "all":
        for key in dict.fromkeys(t.method):
            if key in PAPER_TABLE1:
                name, a, s, tot = PAPER_TABLE1[key]
                out.append({"source": "paper (Table 1)", "method": key, "images": 736, "n": 736, "action": f"{a:.2f}",
                            "subject": f"{s:.2f}", "total": f"{tot:.2f}"})
    return pd.DataFrame(out, columns=["source", "method", "images", "n", *QUESTIONS])


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    return "\n".join(lines)


def _cell(x) -> str:
    if isinstance(x, float):
        return "-" if x != x else f"{x:.3f}"
    return str(x)


def build_tables(run_dir: str | Path, source: str = "all", paper: bool = False,
                 bootstrap_samples: int = 500) -> dict[str, pd.DataFrame]:
    """Everything ``actionbench tables`` prints: overall, per action, agreement, and the long table."""
    from .manifest import read_manifest, read_verdicts
    from .ratings import read_ratings

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest.empty:
        raise ActionBenchError(f"{run_dir}: no generated images (is it a run folder? see `actionbench run`)")
    long = accuracy_table(manifest, sources(run_dir, source))
    out = {"overall": summary(long, "all", paper)}
    for action in dict.fromkeys(manifest.action):
        out[f"action: {action}"] = summary(long, action)
    ratings = read_ratings(run_dir)
    if len(ratings):
        from .agreement import agreement_report
        from .agreement import summary as agreement_summary

        agreement = agreement_summary(agreement_report(manifest, ratings, read_verdicts(run_dir), bootstrap_samples))
        if len(agreement):
            out["agreement"] = agreement
    out["long"] = long
    return out


def format_tables(tables: dict[str, pd.DataFrame], fmt: str = "md") -> str:
    """Render as markdown sections, one CSV (the long table), or LaTeX tabulars."""
    if fmt == "csv":
        return tables["long"].to_csv(index=False)
    parts = []
    for name, df in tables.items():
        if name == "long":
            continue
        if fmt == "md":
            parts.append(f"### {name}\n\n{to_markdown(df)}\n")
        elif fmt == "latex":
            parts.append(f"% {name}\n" + df.to_latex(index=False, float_format="%.3f", escape=True))
        else:
            raise ActionBenchError(f"unknown format {fmt!r} (md, csv or latex)")
    return "\n".join(parts)
