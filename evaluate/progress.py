"""How far an experiment run in parts has got: per method spec, the (action, learning seed)
runs done and still to run, the CPU they took and an estimate of the CPU left.

    python -m evaluate.world_table status --world v3
    python -m evaluate.adi_trial status --world v3

A plan is a list of ``(spec, actions, seeds)``; the parts are ``actionbench demo`` reports
(``demo.json``), whose ``results[action][spec]["seeds"]`` say which learning seeds ran and
whose ``seconds["action/spec/seedN"]`` say what each run cost. A spec that has not run yet is
costed at the mean of the runs of its learner at the same ``steps`` (an ADI ablation at
ADI's), else it is left unestimated.
"""

from __future__ import annotations

import json
from pathlib import Path

from .demo import parse_method_spec


def part_paths(parts: Path) -> list[Path]:
    """Every ``PART/demo.json`` under ``parts``, in the order the parts were named (a-z, then
    aa, ab, ...), so merged tables keep the actions in the order of the first parts."""
    return sorted(parts.glob("*/demo.json"), key=lambda p: (len(p.parent.name), p.parent.name))


def part_reports(parts: Path) -> list[dict]:
    """The reports of :func:`part_paths` (a part still running has written the runs it finished)."""
    return [json.loads(p.read_text()) for p in part_paths(parts)]


def done_runs(reports: list[dict]) -> tuple[dict[tuple[str, str], set[int]], dict[str, list[float]]]:
    """(the learning seeds each (spec, action) ran, the seconds of each run per spec) over ``reports``."""
    done: dict[tuple[str, str], set[int]] = {}
    for r in reports:
        for action, by in r["results"].items():
            for spec, rec in by.items():
                done.setdefault((spec, action), set()).update(rec.get("seeds", [0]))
    cost: dict[str, dict[tuple[str, str], float]] = {}
    for r in reports:
        for key, sec in r.get("seconds", {}).items():
            if key.count("/") == 2:  # action/spec/seedN; "total" and "this_run" are not runs
                action, spec, seed = key.split("/")
                cost.setdefault(spec, {})[(action, seed)] = sec  # a run merged into two parts counts once
    return done, {spec: list(by.values()) for spec, by in cost.items()}


def _family(spec: str) -> tuple[str, object]:
    name, options = parse_method_spec(spec)
    return name, options.get("steps")


def progress_rows(plan: list[tuple[str, tuple[str, ...], tuple[int, ...]]], reports: list[dict],
                  priors: list[dict] = ()) -> list[dict]:
    """One row per planned spec: runs planned and done, the missing seeds per action, CPU
    minutes spent and (estimated) left. ``priors`` (other experiments' reports on the same
    model) only inform the estimate of a spec whose learner has no run in ``reports``."""
    done, cost = done_runs(reports)

    def families(costs: dict[str, list[float]]) -> dict[tuple[str, object], list[float]]:
        out: dict[tuple[str, object], list[float]] = {}
        for spec, secs in costs.items():
            out.setdefault(_family(spec), []).extend(secs)
        return out

    own, prior = families(cost), families(done_runs(list(priors))[1])
    rows = []
    for spec, actions, seeds in plan:
        missing = {a: [s for s in seeds if s not in done.get((spec, a), set())] for a in actions}
        missing = {a: s for a, s in missing.items() if s}
        left = sum(len(s) for s in missing.values())
        secs = cost.get(spec) or own.get(_family(spec)) or prior.get(_family(spec))
        per_run = sum(secs) / len(secs) if secs else None
        rows.append({"method": spec, "planned": len(actions) * len(seeds), "done": len(actions) * len(seeds) - left,
                     "missing": missing, "cpu_min_spent": round(sum(cost.get(spec, [])) / 60, 1),
                     "cpu_min_left": None if per_run is None else round(left * per_run / 60, 1)})
    return rows


def _missing_words(missing: dict[str, list[int]]) -> str:
    """``{"cheer": [1, 2], "sit": [1, 2], "pray": [2]}`` -> ``"seeds 1,2: cheer, sit; seed 2: pray"``."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for action, seeds in missing.items():
        groups.setdefault(tuple(seeds), []).append(action)
    return "; ".join(f"seed{'s' if len(s) > 1 else ''} {','.join(map(str, s))}: {', '.join(a)}"
                     for s, a in groups.items())


def progress_table(rows: list[dict]) -> str:
    """The rows as markdown, with a total line; an unestimated spec makes the total a lower bound."""
    lines = ["| method | runs done | still to run | CPU-min spent | CPU-min left (est.) |", "|---|---|---|---|---|"]
    for r in rows:
        left = "?" if r["cpu_min_left"] is None else f"{r['cpu_min_left']:.0f}"
        lines.append(f"| {r['method']} | {r['done']}/{r['planned']} | {_missing_words(r['missing']) or '-'} | "
                     f"{r['cpu_min_spent']:.0f} | {left} |")
    known = [r["cpu_min_left"] for r in rows if r["cpu_min_left"] is not None]
    unknown = any(r["cpu_min_left"] is None and r["missing"] for r in rows)
    lines.append(f"| **all** | {sum(r['done'] for r in rows)}/{sum(r['planned'] for r in rows)} | | "
                 f"{sum(r['cpu_min_spent'] for r in rows):.0f} | {'>= ' if unknown else ''}{sum(known):.0f} |")
    return "\n".join(lines) + "\n"
