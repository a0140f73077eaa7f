"""Figures of a run (matplotlib, PNG): what the report shows above its image grids.

- ``accuracy.png``: action, subject and total accuracy per method, one panel per source
  (human ratings, each judge), with the tables' 95% Wilson intervals as error bars;
- ``heatmap.png``: total accuracy, methods x actions, one panel per source;
- ``leakage.png``: per method, the share of animal prompts ("a panda <A>") a judge drew as a
  human (the exemplars are people: such an image took their looks with the action), with
  Wilson intervals; only judges that name the subject they see (the world judge) count.

Every figure is computed from the same tables as ``actionbench tables``
(:func:`evaluate.tables.accuracy_table`), so a figure and a table never disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from actionbench.errors import ActionBenchError

from .tables import QUESTIONS, wilson

COLORS = {"action": "#4878d0", "subject": "#ee854a", "total": "#6acc64"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no screen here, and none needed
    import matplotlib.pyplot as plt

    return plt


def accuracy_figure(long: pd.DataFrame, path: str | Path) -> Path | None:
    """Grouped bars: per source a panel, per method three bars (action, subject, total), 95% intervals."""
    t = long[(long.action == "all") & (long.n > 0)]
    if t.empty:
        return None
    plt = _plt()
    sources = list(dict.fromkeys(t.source))
    methods = list(dict.fromkeys(long.method))
    fig, axes = plt.subplots(1, len(sources), figsize=(max(4.0, 0.9 * len(methods) + 1.5) * len(sources), 3.4),
                             squeeze=False, sharey=True)
    width = 0.8 / len(QUESTIONS)
    for ax, source in zip(axes[0], sources):
        g = t[t.source == source].set_index(["method", "question"])
        x = np.arange(len(methods))
        for k, q in enumerate(QUESTIONS):
            acc = np.array([g.acc.get((m, q), np.nan) for m in methods]) * 100
            lo = np.array([g.lo.get((m, q), np.nan) for m in methods]) * 100
            hi = np.array([g.hi.get((m, q), np.nan) for m in methods]) * 100
            ax.bar(x + (k - 1) * width, acc, width, color=COLORS[q], label=q,
                   yerr=_err(acc, lo, hi), capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 112)
        ax.set_yticks(range(0, 101, 20))
        ax.set_title(source, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%), 95% interval")
    axes[0][-1].legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    return _save(fig, path)


def heatmap_figure(long: pd.DataFrame, path: str | Path) -> Path | None:
    """Total accuracy, methods (rows) x actions (columns), one panel per source; numbers in the cells."""
    t = long[(long.action != "all") & (long.question == "total") & (long.n > 0)]
    if t.empty:
        return None
    plt = _plt()
    sources = list(dict.fromkeys(t.source))
    methods = list(dict.fromkeys(long.method))
    actions = list(dict.fromkeys(long[long.action != "all"].action))
    fig, axes = plt.subplots(1, len(sources), figsize=((0.7 * len(actions) + 2.2) * len(sources), 0.45 * len(methods) + 1.4),
                             squeeze=False)
    for ax, source in zip(axes[0], sources):
        g = t[t.source == source].set_index(["method", "action"]).acc
        grid = np.array([[g.get((m, a), np.nan) * 100 for a in actions] for m in methods])
        ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for i in range(len(methods)):
            for j in range(len(actions)):
                v = grid[i, j]
                ax.text(j, i, "-" if v != v else f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v != v or v < 60 else "black")
        ax.set_xticks(range(len(actions)), actions, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_title(f"{source}: total accuracy (%)", fontsize=9)
    return _save(fig, path)


def leakage_rates(manifest: pd.DataFrame, verdicts: pd.DataFrame, animals: set[str], humans: set[str]) -> pd.DataFrame:
    """Per judge and method: animal-prompt images, how many the judge drew as a human, share and interval."""
    rows = []
    if verdicts.empty:
        return pd.DataFrame(columns=["judge", "method", "images", "human", "rate", "lo", "hi"])
    m = manifest[manifest.subject.str.lower().isin(animals)][["image_id", "method"]]
    v = verdicts[verdicts.predicted_subject.notna()].merge(m, on="image_id")
    for judge in sorted(set(v.judge)):
        for method in dict.fromkeys(manifest.method):
            g = v[(v.judge == judge) & (v.method == method)]
            if g.empty:
                continue
            k = int(g.predicted_subject.astype(str).str.lower().isin(humans).sum())
            lo, hi = wilson(k / len(g), len(g))
            rows.append(dict(judge=judge, method=method, images=len(g), human=k, rate=k / len(g), lo=lo, hi=hi))
    return pd.DataFrame(rows, columns=["judge", "method", "images", "human", "rate", "lo", "hi"])


def leakage_figure(rates: pd.DataFrame, path: str | Path) -> Path | None:
    if rates.empty:
        return None
    plt = _plt()
    judges = list(dict.fromkeys(rates.judge))
    methods = list(dict.fromkeys(rates.method))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(methods) + 1.5), 3.0))
    width = 0.8 / len(judges)
    x = np.arange(len(methods))
    for k, judge in enumerate(judges):
        g = rates[rates.judge == judge].set_index("method")
        r = np.array([g.rate.get(mm, np.nan) for mm in methods]) * 100
        lo = np.array([g.lo.get(mm, np.nan) for mm in methods]) * 100
        hi = np.array([g.hi.get(mm, np.nan) for mm in methods]) * 100
        bars = ax.bar(x + (k - (len(judges) - 1) / 2) * width, r, width, label=f"judge: {judge}",
                      yerr=_err(r, lo, hi), capsize=2, color="#d65f5f", error_kw={"lw": 0.8})
        for b, mm in zip(bars, methods):
            if mm in g.index:
                ax.text(b.get_x() + b.get_width() / 2, 1, f"{int(g.human[mm])}/{int(g.images[mm])}", ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("animals drawn human (%)")
    ax.set_title("leakage: animal prompts drawn as a person\n(count over animal images, 95% interval)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if len(judges) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)


def animal_and_human_names() -> tuple[set[str], set[str]]:
    """Subject names that are animals (the catalogue's and the world's), and the human kinds a judge may name."""
    from actionbench.catalog import subjects as catalog

    animals = {s.name.lower() for s in catalog() if s.category == "animal"}
    humans = {"person", "human", "man", "woman", "boy", "girl", "old_man", "old man"}
    try:
        from actionbench.world import render

        animals |= {render.subject_phrase(a).lower() for a in render.ANIMALS}
        humans |= {h.lower() for h in render.HUMANS}
    except Exception:  # the world package is optional for runs on SD
        pass
    return animals, humans


def write_figures(run_dir: str | Path, out_dir: str | Path | None = None, source: str = "all") -> dict[str, Path]:
    """The run's figures into ``RUN/figures/`` (or ``out_dir``): name -> path, for those with data."""
    from .manifest import read_manifest, read_verdicts
    from .tables import accuracy_table, sources

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "figures"
    manifest = read_manifest(run_dir)
    if manifest.empty:
        return {}
    try:
        long = accuracy_table(manifest, sources(run_dir, source))
    except ActionBenchError:  # nothing rated or judged yet: no figures, not an error
        return {}
    animals, humans = animal_and_human_names()
    made = {"accuracy": accuracy_figure(long, out_dir / "accuracy.png"),
            "heatmap": heatmap_figure(long, out_dir / "heatmap.png"),
            "leakage": leakage_figure(leakage_rates(manifest, read_verdicts(run_dir), animals, humans),
                                      out_dir / "leakage.png")}
    return {k: v for k, v in made.items() if v is not None}


def _err(v, lo, hi) -> np.ndarray:
    """Error bar lengths below and above (never negative: a Wilson bound equals the rate at 0% and 100%)."""
    return np.clip(np.nan_to_num(np.stack([v - lo, hi - v])), 0, None)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
