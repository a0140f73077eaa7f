"""``report.html``: per action, its exemplars, then a subjects x methods grid of the images.

Images are linked by relative path (the run's PNGs; the exemplars where the benchmark
lives), never copied or embedded, so the report stays small and the benchmark's photos
stay where their licence wants them. Each image carries the judges' verdicts as a small
badge (green: right, red: wrong, grey: cannot tell).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from .manifest import read_manifest, read_verdicts

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ccc}
.ex img{height:90px;margin:2px;border-radius:3px}
table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:4px;vertical-align:top;text-align:center}
th.subj{text-align:right;white-space:nowrap}
figure{display:inline-block;margin:2px}
figure img{width:96px;height:96px;image-rendering:auto;display:block}
figcaption{font-size:10px;line-height:1.2}
.ok{color:#080}.no{color:#c00}.na{color:#999}
"""


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def _badge(judge: str, v) -> str:
    def mark(x):
        if x is None or x != x:  # None or NaN/NA
            return "<span class=na>?</span>"
        return "<span class=ok>&#10003;</span>" if bool(x) else "<span class=no>&#10007;</span>"

    act = mark(None if v.action_ok is None or str(v.action_ok) == "<NA>" else v.action_ok)
    sub = mark(None if v.subject_ok is None or str(v.subject_ok) == "<NA>" else v.subject_ok)
    title = html.escape(f"{judge}: predicted {v.predicted_action or '-'} / {v.predicted_subject or '-'} {v.note or ''}")
    return f"<span title='{title}'>{html.escape(judge)} A{act} S{sub}</span>"


def _judge_summary(manifest, verdicts) -> str:
    """Judges' accuracy per method (overall): judged / generated, action and subject in %."""
    if verdicts.empty:
        return ""
    from .tables import accuracy_table, judge_scores, summary

    scores = {f"judge:{j}": judge_scores(verdicts, j) for j in sorted(set(verdicts.judge))}
    table = summary(accuracy_table(manifest, scores))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return (f"<h2>Judges</h2><p>n = images the judge could tell about; % with 95% interval. Human ratings: "
            f"<code>actionbench annotate</code>, then <code>actionbench tables</code>.</p><table><tr>{head}</tr>{body}</table>")


def write_report(run_dir: str | Path, action_sets: dict, out: str | Path | None = None) -> Path:
    """Write ``report.html`` into the run folder (or ``out``) and return its path."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "report.html"
    manifest = read_manifest(run_dir)
    verdicts = read_verdicts(run_dir)
    by_image = {}
    for v in verdicts.itertuples():
        by_image.setdefault(v.image_id, []).append(v)
    methods = list(dict.fromkeys(manifest.method))
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(run_dir.name)}</title><style>{CSS}</style>",
             f"<h1>Run {html.escape(run_dir.name)}</h1>",
             f"<p>{len(manifest)} images, {len(methods)} methods: {html.escape(', '.join(methods))}. "
             "Badges: judge, A = action, S = subject (&#10003; right, &#10007; wrong, ? cannot tell).</p>"]
    parts.append(_judge_summary(manifest, verdicts))
    for action in dict.fromkeys(manifest.action):
        rows = manifest[manifest.action == action]
        parts.append(f"<h2 id='{html.escape(action)}'>{html.escape(action)}</h2>")
        aset = action_sets.get(action)
        if aset is not None:
            phrase = f" ({html.escape(aset.phrase)})" if aset.phrase else ""
            parts.append(f"<p>Exemplars{phrase}:</p><div class=ex>")
            for ex in aset.exemplars:
                src = html.escape(_rel(ex.image_path, out.parent))
                parts.append(f"<img src='{src}' alt='{html.escape(ex.key)}' title='{html.escape(ex.template)}'>")
            parts.append("</div>")
        parts.append("<table><tr><th></th>" + "".join(f"<th>{html.escape(m)}</th>" for m in methods) + "</tr>")
        for subject in dict.fromkeys(rows.subject):
            parts.append(f"<tr><th class=subj>{html.escape(subject)}</th>")
            for m in methods:
                cell = rows[(rows.subject == subject) & (rows.method == m)].sort_values("index")
                figs = []
                for r in cell.itertuples():
                    src = html.escape(_rel(run_dir / r.path, out.parent))
                    badges = "<br>".join(_badge(v.judge, v) for v in by_image.get(r.image_id, []))
                    figs.append(f"<figure><img src='{src}' title='{html.escape(r.prompt)}' loading=lazy>"
                                f"<figcaption>{badges}</figcaption></figure>")
                parts.append(f"<td>{''.join(figs)}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
