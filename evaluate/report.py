"""``report.html``: figures, agreement, per action its exemplars and a subjects x methods
grid of the images, then a per-image drill-down.

The figures (:mod:`evaluate.plots`: accuracy per method with 95% intervals, methods x
actions, leakage) are PNGs in ``RUN/figures/``. The drill-down has one row per rated or
judged image: each judge's verdict and each rater's answers side by side, the raters'
majority, and filters "raters disagree" and "judge disagrees with raters" (plain
JavaScript, no server). ``actionbench report RUN`` writes it again after rating.

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
.figs img{max-width:100%;margin:4px 8px 4px 0;border:1px solid #eee}
#drill td{font-size:12px;text-align:left}#drill td img{width:64px;height:64px}
#drill tr.hide{display:none}.bar{margin:.5em 0;padding:.4em;background:#f4f4f4;border-radius:4px}
.flag{background:#fff3cd}
"""

FILTER_JS = """
function applyFilters(){
  const rd=document.getElementById('f-raters').checked, jd=document.getElementById('f-judge').checked;
  const m=document.getElementById('f-method').value, a=document.getElementById('f-action').value;
  let shown=0;
  document.querySelectorAll('#drill tbody tr').forEach(tr=>{
    const ok=(!rd||tr.dataset.rdis==='1')&&(!jd||tr.dataset.jdis==='1')&&(!m||tr.dataset.method===m)&&(!a||tr.dataset.action===a);
    tr.classList.toggle('hide',!ok); if(ok) shown++;});
  document.getElementById('f-count').textContent=shown+' shown';
}
document.addEventListener('DOMContentLoaded',()=>{document.querySelectorAll('.bar input,.bar select').forEach(
  e=>e.addEventListener('change',applyFilters)); applyFilters();});
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


def _known(x) -> bool:
    import pandas as pd

    return x is not None and not pd.isna(x)


def _mark(x) -> str:
    if not _known(x):
        return "<span class=na>?</span>"
    return "<span class=ok>&#10003;</span>" if bool(x) else "<span class=no>&#10007;</span>"


def _figures(run_dir: Path, out: Path) -> str:
    from .plots import write_figures

    try:
        figs = write_figures(run_dir)
    except Exception as err:  # a figure must never cost the report
        return f"<p class=na>figures not drawn: {html.escape(str(err))}</p>"
    if not figs:
        return ""
    imgs = "".join(f"<img src='{html.escape(_rel(p, out.parent))}' alt='{k}'>" for k, p in figs.items())
    return (f"<h2>Figures</h2><p>Accuracy per method (95% Wilson intervals over images), total accuracy per "
            f"method and action, and animal prompts drawn as a person (judges that name the subject). "
            f"Files: <code>figures/</code>.</p><div class=figs>{imgs}</div>")


def _agreement(manifest, ratings, verdicts) -> str:
    if ratings.empty:
        return ""
    from .agreement import agreement_report, summary

    table = summary(agreement_report(manifest, ratings, verdicts, bootstrap_samples=200))
    if table.empty:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>"
                   for row in table.fillna("-").itertuples(index=False))
    return ("<h2>Agreement</h2><p>Raters among themselves and each judge against the raters' majority (ties left "
            "out), 95% bootstrap intervals over images; per method and per rater pair: "
            f"<code>actionbench agreement</code>.</p><table><tr>{head}</tr>{body}</table>")


def _drilldown(run_dir: Path, out: Path, manifest, ratings, verdicts) -> str:
    """One row per image with a verdict or a rating: judges and raters side by side, with filters."""
    done = ratings.dropna(subset=["action_ok", "subject_ok"])
    by_rater = {(r.image_id, r.rater): (r.action_ok, r.subject_ok) for r in done.itertuples()}
    raters = sorted(set(done.rater))
    judges = sorted(set(verdicts.judge))
    verdict = {(v.image_id, v.judge): v for v in verdicts.itertuples()}
    rows = manifest[manifest.image_id.isin(set(done.image_id) | set(verdicts.image_id))]
    if rows.empty:
        return ""
    head = ("<tr><th>image</th><th>method</th><th>action</th><th>subject</th>"
            + "".join(f"<th>judge {html.escape(j)}</th>" for j in judges)
            + "".join(f"<th>{html.escape(r)}</th>" for r in raters) + "<th>majority</th></tr>")
    body = []
    for r in rows.itertuples():
        answers = [by_rater[(r.image_id, x)] for x in raters if (r.image_id, x) in by_rater]
        maj = []
        for q in (0, 1):
            yes = sum(bool(a[q]) for a in answers)
            maj.append(None if not answers or 2 * yes == len(answers) else 2 * yes > len(answers))
        rdis = any(len({bool(a[q]) for a in answers}) > 1 for q in (0, 1))
        jdis = False
        cells = []
        for j in judges:
            v = verdict.get((r.image_id, j))
            if v is None:
                cells.append("<td>-</td>")
                continue
            for q, got in enumerate((v.action_ok, v.subject_ok)):
                if maj[q] is not None and _known(got) and bool(got) != maj[q]:
                    jdis = True
            said = html.escape(f"{v.predicted_action or '-'} / {v.predicted_subject or '-'}")
            cells.append(f"<td>A{_mark(v.action_ok)} S{_mark(v.subject_ok)}<br><small>{said}</small></td>")
        for x in raters:
            a = by_rater.get((r.image_id, x))
            cells.append("<td>-</td>" if a is None else f"<td>A{_mark(a[0])} S{_mark(a[1])}</td>")
        cells.append(f"<td>A{_mark(maj[0])} S{_mark(maj[1])}</td>")
        src = html.escape(_rel(run_dir / r.path, out.parent))
        flag = " class=flag" if rdis or jdis else ""
        body.append(f"<tr data-rdis='{int(rdis)}' data-jdis='{int(jdis)}' data-method='{html.escape(r.method)}' "
                    f"data-action='{html.escape(r.action)}'{flag}><td><img src='{src}' loading=lazy "
                    f"title='{html.escape(r.prompt)}'><br><small>{html.escape(r.image_id)}</small></td>"
                    f"<td>{html.escape(r.method)}</td><td>{html.escape(r.action)}</td><td>{html.escape(r.subject)}</td>"
                    + "".join(cells) + "</tr>")
    opts = lambda vals: "<option value=''>all</option>" + "".join(  # noqa: E731
        f"<option>{html.escape(v)}</option>" for v in dict.fromkeys(vals))
    bar = ("<div class=bar><label><input type=checkbox id=f-raters> raters disagree</label> &nbsp; "
           "<label><input type=checkbox id=f-judge> judge disagrees with raters</label> &nbsp; "
           f"method <select id=f-method>{opts(rows.method)}</select> action <select id=f-action>{opts(rows.action)}</select>"
           " &nbsp; <span id=f-count></span></div>")
    return (f"<h2 id=drilldown>Per image</h2><p>{len(rows)} images with a verdict or a rating. A = action, S = subject; "
            "a judge's cell also says what it saw (action / subject). Highlighted: the raters disagree, or a judge "
            "disagrees with their majority on a question.</p>"
            f"{bar}<table id=drill><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
            f"<script>{FILTER_JS}</script>")


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
    from .ratings import read_ratings

    ratings = read_ratings(run_dir)
    parts.append(_figures(run_dir, out))
    parts.append(_judge_summary(manifest, verdicts))
    parts.append(_agreement(manifest, ratings, verdicts))
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
    parts.append(_drilldown(run_dir, out, manifest, ratings, verdicts))
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
