"""The full ActionWorld method table of issue #11, in two resumable stages.

    python -m evaluate.world_table sweep  [--device cuda]   # each learner's learning rate, once, on one action
    python -m evaluate.world_table table  [--device cuda]   # 8 actions x every method and ADI ablation x 3 seeds
    python -m evaluate.world_table all    [--device cuda]
    python -m evaluate.world_table merge [--docs docs/actionworld.md]  # the parts' reports as one table (and the docs' section)
    python -m evaluate.world_table status [--world v3]  # the runs done and to run, and the CPU they take (evaluate/progress.py)

On a CPU, run the table in parts, one process per core, each one thread (here two 1-thread
processes learn twice as fast as one 2-thread process):

    python -m evaluate.world_table table --threads 1 --part a --actions handstand,salute,... --seeds 0 &
    python -m evaluate.world_table table --threads 1 --part b --actions ...                 --seeds 0 &
    python -m evaluate.world_table merge

Budgets are equal in exemplar images seen (``--images-seen``, default 600: TI 300 steps at
batch 2, P+ 75 at batch 8, ADI 600 triples), not the papers' step counts made for SD at
512 px. ``sweep`` runs every learner at each rate of :data:`SWEEP` on ``--sweep-action``
(default salute: of the three unnamed actions the one the model draws least when no
action is named, 2 of 36 images, so a learner that learns nothing cannot score; one
learning seed, ``--n`` images per subject) into ``results/world-sweep`` and writes
``chosen_lr.json`` (highest total, ties broken by action accuracy). ``table`` reads it
and runs the whole table into ``results/world-table`` with intervals and paired tests
against ADI (``table.md``); each part goes to ``results/world-table/parts/PART`` and
``merge`` folds them into ``results/world-table``. Both stages use ``actionbench demo``'s ``--resume``: a run cut
short continues where it stopped. ADI's ablations take ADI's chosen rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluate.demo import (
    WORLD_MODELS,
    DemoSettings,
    _animal_counts,
    _compare_section,
    _leak_slots,
    _slots,
    merge_reports,
    parse_method_spec,
    reference_method,
    run_demo,
    totals_matrix,
    world_actions,
    write_tables,
)
from evaluate.progress import part_paths, part_reports, progress_rows, progress_table

# learning rates tried per learner on the 64 px world model (token methods around the
# demo's 5e-3, weight tuners around their papers' rates scaled up for a 5M-parameter UNet)
SWEEP = {
    "textual-inversion": (1e-3, 5e-3, 2e-2),
    "pplus": (1e-3, 5e-3, 2e-2),
    "adi": (1e-3, 5e-3, 2e-2),
    "reversion": (1e-3, 5e-3, 2e-2),
    "dreambooth": (1e-5, 1e-4, 1e-3),
    "custom-diffusion": (1e-5, 1e-4, 1e-3),
}
FIXED = ("sd", "controlnet")  # nothing learned: no rate to choose
# v3: the v3 pipeline's default ControlNet is world-v3 (actionbench/world/controlnet-v3)
FIXED_BY_WORLD = {"v2b": FIXED, "v3": FIXED}
# the paper's ablations of ADI, then (ours) beta 0.2: the lever the mask measurements point
# to on the world's 64-channel tokens (docs/actionworld.md, "ADI does not learn ... and why")
ADI_ABLATIONS = ("adi:mask=none", "adi:layerwise=false", "adi:mask=union", "adi:mask=context-only", "adi:mask=action-only",
                 "adi:beta=0.2")
# v3 adds the paper's reversed masks (update only what ADI would mask), which the v2b table
# never ran; v2b's archived table keeps its set
ADI_ABLATIONS_BY_WORLD = {"v2b": ADI_ABLATIONS, "v3": ADI_ABLATIONS + ("adi:mask=reversed",)}


def sweep_specs() -> list[str]:
    """Every learner at every rate of :data:`SWEEP`, as ``actionbench demo`` method specs."""
    return [f"{m}:lr={lr:g}" for m, lrs in SWEEP.items() for lr in lrs]


def choose_lr(results: dict) -> dict[str, float]:
    """Per learner of :data:`SWEEP`, the rate whose spec scored the highest total in
    ``results`` (one action's ``{spec: scores}``), ties broken by action accuracy, then by
    the larger rate. A learner with no spec in ``results`` is left out."""
    chosen = {}
    for m in SWEEP:
        scored = [(r["total"], r["action"], opts["lr"]) for spec, r in results.items()
                  for name, opts in [parse_method_spec(spec)] if name == m and "lr" in opts]
        if scored:
            chosen[m] = max(scored)[2]
    return chosen


def table_specs(chosen: dict[str, float], world: str = "v2b") -> list[str]:
    """The table's methods: the two that learn nothing, every learner at its chosen rate,
    ADI's ablations of ``world`` (:data:`ADI_ABLATIONS_BY_WORLD`) at ADI's."""
    return (list(FIXED_BY_WORLD[world]) + [f"{m}:lr={chosen[m]:g}" for m in SWEEP]
            + [f"{a}:lr={chosen['adi']:g}" for a in ADI_ABLATIONS_BY_WORLD[world]])


def select_specs(specs: list[str], names: list[str]) -> list[str]:
    """The table specs named in ``names``, each as written without its chosen rate
    (``adi`` is ADI itself, ``adi:mask=none`` that ablation), in the table's order."""
    bare = {spec.split(":lr=")[0]: spec for spec in specs}
    unknown = [n for n in names if n not in bare]
    if unknown:
        raise SystemExit(f"--methods: {', '.join(unknown)} not in the table; one of {', '.join(bare)}")
    return [spec for b, spec in bare.items() if b in names]


def folders(args) -> tuple[Path, Path]:
    """(sweep folder, table folder) under ``--out``: ``world-sweep``, ``world-table`` on v2b;
    ``world-v3-sweep``, ``world-v3-table`` on v3."""
    world = getattr(args, "world", "v2b")
    tag = "world" if world == "v2b" else f"world-{world}"
    return Path(args.out) / f"{tag}-sweep", Path(args.out) / f"{tag}-table"


def _world_settings(args) -> dict:
    world = getattr(args, "world", "v2b")
    return {"world": world}


def sweep(args) -> dict:
    out = folders(args)[0]
    s = DemoSettings(actions=(args.sweep_action,), methods=tuple(sweep_specs()), n=args.n, images_seen=args.images_seen,
                     learn_seeds=(0,), device=args.device, **_world_settings(args))
    report = run_demo(s, out, resume=True)
    write_tables(report, out)
    chosen = choose_lr(report["results"][args.sweep_action])
    (out / "chosen_lr.json").write_text(json.dumps({"action": args.sweep_action, "images_seen": args.images_seen,
                                                    "lr": chosen}, indent=1))
    print("chosen learning rates:", chosen)
    return chosen


def _table_specs_and_actions(args) -> tuple[list[str], tuple[str, ...]]:
    """The table's specs at the sweep's chosen rates (``--methods`` of them) and ``--actions`` (default all)."""
    world = getattr(args, "world", "v2b")
    path = folders(args)[0] / "chosen_lr.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the sweep first (python -m evaluate.world_table sweep --world {world})")
    specs = table_specs(json.loads(path.read_text())["lr"], world)
    if args.methods:
        specs = select_specs(specs, args.methods.split(","))
    return specs, tuple(args.actions.split(",")) if args.actions else world_actions(world)


def table(args) -> None:
    specs, actions = _table_specs_and_actions(args)
    s = DemoSettings(actions=actions, methods=tuple(specs), n=args.n_table, images_seen=args.images_seen,
                     learn_seeds=tuple(int(x) for x in args.seeds.split(",")), device=args.device, **_world_settings(args))
    out = folders(args)[1] / "parts" / args.part
    report = run_demo(s, out, resume=True)
    write_tables(report, out)
    if not args.no_merge:
        merge(args)


def table_plan(args) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
    """The whole table as (spec, actions, learning seeds): the methods that learn nothing run
    learning seed 0 only (their image stands for every seed), every learner ``--seeds``."""
    fixed = FIXED_BY_WORLD[getattr(args, "world", "v2b")]
    specs, actions = _table_specs_and_actions(args)
    seeds = tuple(int(x) for x in args.seeds.split(","))
    return [(spec, actions, (0,) if spec in fixed else seeds) for spec in specs]


def status(args) -> str:
    """The table's progress over its parts (:mod:`evaluate.progress`), as markdown."""
    text = progress_table(progress_rows(table_plan(args), part_reports(folders(args)[1] / "parts")))
    print(text)
    return text


def mask_kept(learned_dir: Path) -> dict[str, float]:
    """Per ADI run in ``learned_dir`` (its training log), the mean share of the identifier's
    gradient that ADI's masks kept: 1.0 without masks, ~beta-dependent with them."""
    kept = {}
    for log in sorted(learned_dir.glob("*.log.jsonl")):
        values = [json.loads(line).get("kept") for line in log.read_text().splitlines() if line.strip()]
        values = [v for v in values if v is not None]
        if values:
            kept[log.name.removesuffix(".safetensors.log.jsonl")] = round(sum(values) / len(values), 4)
    return kept


BEGIN, END = "<!-- world-table: generated by python -m evaluate.world_table merge --docs -->", "<!-- /world-table -->"


def markers(world: str = "v2b") -> tuple[str, str]:
    """The docs' (begin, end) lines around the table section of ``world`` (each world its own)."""
    if world == "v2b":
        return BEGIN, END
    return (f"<!-- world-{world}-table: generated by python -m evaluate.world_table merge --world {world} --docs -->",
            f"<!-- /world-{world}-table -->")


def fill_section(text: str, content: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with what lies between the lines ``begin`` and ``end`` replaced by
    ``content``; both markers must be there, once each, ``begin`` first."""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"the docs need the markers {begin!r} and {end!r}, once each and in that order")
    head, rest = text.split(begin)
    return head + begin + "\n" + content.strip("\n") + "\n" + end + rest.split(end, 1)[1]


def docs_section(report: dict, balanced: dict | None = None, seeds: list[int] | None = None) -> str:
    """The table as docs/actionworld.md shows it: totals per action and method, then the
    pooled table with intervals and paired tests over all actions (from ``balanced``, each
    method's runs with the seeds it ran on every action, :func:`balanced_parts`; ``seeds``
    are the reference method's), then over the unnamed
    actions with every seed (the per-action details stay in table.md)."""
    runs = sum(len(set(r.get("seeds", [0]))) for by in report["results"].values() for r in by.values())
    text = (f"{runs} runs, {report['seconds']['total'] / 60:.0f} CPU-minutes of learning and judging. "
            "Total accuracy per action (the subject asked for *and* the action; 72 images per run):\n\n"
            + totals_matrix(report) + "\n\n"
            + (f"All actions, each method with the learning seeds it ran on every action "
               f"({reference_method(report)}: {_seed_words(seeds)}):\n"
               if balanced else "All actions:\n")
            + _compare_section(balanced or report))
    spread = seed_spread(report)
    if spread:
        gaps = sorted(g for _, _, g in spread)
        worst = max(spread, key=lambda x: x[2])
        text += (f"\nHow far one learning seed is from another: over the {len(gaps)} pairs of seeds of one learner on "
                 f"one action, the total differs by {_points(gaps[len(gaps) // 2])} at the median and "
                 f"{100 * gaps[-1]:.0f} at most ({worst[1]} on {worst[0]}); a one-seed row is that uncertain "
                 "before any image is drawn.\n")
    unnamed = [a for a in report.get("unnamed_actions", []) if a in report["results"]]
    if unnamed and len(unnamed) < len(report["results"]):
        sub = {**report, "results": {a: report["results"][a] for a in unnamed}}
        text += (f"\nThe unnamed actions only ({', '.join(unnamed)}: the world model's captions never name "
                 "them, so the text prompt cannot ask for them and only what a method learns can score):\n"
                 + _compare_section(sub))
    return text


def _points(share: float) -> str:
    """0.0139 -> "1 point", 0.24 -> "24 points"."""
    n = f"{100 * share:.0f}"
    return f"{n} point" if n == "1" else f"{n} points"


def seed_spread(report: dict) -> list[tuple[str, str, float]]:
    """(action, method, |total of seed a - total of seed b|) for every pair of learning seeds
    of one method on one action: how much a learning seed alone moves a run's total."""
    out = []
    for action, by in report["results"].items():
        for method in by:
            tot, _, _, clusters = _slots(report, method, [action])  # clusters: "action/seed", one per slot
            per_seed: dict[str, list[int]] = {}
            for hit, cluster in zip(tot, clusters):
                per_seed.setdefault(cluster, []).append(hit)
            rates = [sum(v) / len(v) for v in per_seed.values()]
            out += [(action, method, abs(a - b)) for i, a in enumerate(rates) for b in rates[i + 1:]]
    return out


def balanced_seeds(report: dict, method: str | None = None) -> list[int]:
    """The learning seeds ``method`` (default the reference method, :func:`reference_method`)
    ran on every action of ``report`` it ran: parts with only these seeds weigh every action alike."""
    method = method or reference_method(report)
    per_action = [set(by[method]["seeds"]) for by in report["results"].values() if method in by]
    return sorted(set.intersection(*per_action)) if per_action else []


def balanced_parts(reports: list[dict], merged: dict) -> list[dict]:
    """The parts' reports with each method's runs kept only where the part's learning seeds
    are among the seeds that method ran on every action (:func:`balanced_seeds`): a seed a
    method ran on a few actions only would weigh those actions more in a pooled table."""
    methods = {m for by in merged["results"].values() for m in by}
    keep = {m: set(balanced_seeds(merged, m)) for m in methods}
    out = []
    for r in reports:
        seeds = set(r["settings"]["learn_seeds"])
        results = {a: {m: rec for m, rec in by.items() if seeds <= keep[m]} for a, by in r["results"].items()}
        results = {a: by for a, by in results.items() if by}
        if results:
            out.append({**r, "results": results})
    return out


def _seed_words(seeds: list[int] | None) -> str:
    if not seeds:
        return "seeds"
    return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds[:-1])) + f" and {seeds[-1]}"


def leakage_summary(report: dict, n_boot: int = 2000) -> dict:
    """Per method of a v3 table report, pooled over every action and seed it ran: the
    context-leak rate and the share of animals drawn human, percent, the leak rate's 95%
    cluster-bootstrap interval, and the runs and counted images behind it."""
    from evaluate.paired import bootstrap_ci

    out: dict[str, dict] = {"context_leakage": {}, "context_leakage_ci": {}, "animals_drawn_human": {}, "runs": {},
                            "images": {}}
    methods = list(dict.fromkeys(m for by in report["results"].values() for m in by))
    for m in methods:
        actions = [a for a, by in report["results"].items() if m in by]
        x, cl = _leak_slots(report, m, actions)
        if not x:
            continue
        rate, low, high = bootstrap_ci(x, cl, n_boot)
        human, animals = _animal_counts(report, m, actions)
        out["context_leakage"][m] = round(100 * rate, 1)
        out["context_leakage_ci"][m] = [round(100 * low, 1), round(100 * high, 1)]
        out["animals_drawn_human"][m] = round(100 * human / max(1, animals), 1)
        out["runs"][m] = sum(len(set(report["results"][a][m].get("seeds", [0]))) for a in actions)
        out["images"][m] = len(x)
    return out


def update_phenomena(report: dict, path: Path, table_dir: Path) -> dict:
    """Write the table's leakage into the phenomena report at ``path`` (issue #23: its
    ``context_leakage``, method -> percent, once the table has run); the rest is kept."""
    summary = leakage_summary(report)
    rep = json.loads(path.read_text())
    rep["context_leakage"] = summary.pop("context_leakage")
    rep["context_leakage_detail"] = {**summary, "source": f"{table_dir.parent.name}/{table_dir.name}/demo.json",
                                     "what": "share of images judged in the exemplars' dominant scene or outfit when the "
                                             "prompt asked for another, pooled over the table's actions, each method with "
                                             "the learning seeds it ran on every action; "
                                             "95% cluster-bootstrap interval over (action, seed)"}
    path.write_text(json.dumps(rep, indent=1) + "\n")
    return rep


def merge(args) -> dict:
    """Every part's ``demo.json`` under ``world-table/parts`` as one report and table in ``world-table``.
    Parts are read in the order they were named (a-z, then aa, ab, ...), so the table's action
    columns keep the order of the first parts."""
    out = folders(args)[1]
    paths = part_paths(out / "parts")
    if not paths:
        raise SystemExit(f"no parts under {out / 'parts'}: run the table first (python -m evaluate.world_table table)")
    reports = [json.loads(p.read_text()) for p in paths]
    report = merge_reports(reports)
    report["parts"] = [str(p.parent.relative_to(out)) for p in paths]
    report["mask_kept"] = {k: v for p in paths for k, v in mask_kept(p.parent / "learned").items()}
    (out / "demo.json").write_text(json.dumps(report, indent=1))
    write_tables(report, out)
    print(f"{len(paths)} parts merged into {out}: {report['seconds']['total'] / 3600:.2f} h of learning and judging")
    # the pooled readings (pattern, leakage, the docs' pooled tables) take each method's runs with the
    # seeds it ran on every action, so a seed still running on a few actions does not weigh them more
    parts = balanced_parts(reports, report)
    balanced = merge_reports(parts) if parts and parts != reports else None
    pooled = balanced or report
    pattern = None
    if getattr(args, "world", "v2b") == "v3" and any("sd" in by for by in report["results"].values()):
        from evaluate.paper_pattern import pattern_rows, pattern_table

        rows = pattern_rows(pooled)
        pattern = ("Each method against the text prompt (`sd`), slot by slot (`python -m evaluate.paper_pattern`), "
                   "with the learning seeds it ran on every action: rate on the paired slots (difference in points "
                   "[95% cluster-bootstrap interval], paired-bootstrap p)."
                   "\n\n" + pattern_table(rows) + "\n")
        (out / "pattern.md").write_text(pattern)
        (out / "pattern.json").write_text(json.dumps(rows, indent=1))
    phen = Path(args.out) / "world-v3" / "phenomena.json"
    if getattr(args, "world", "v2b") == "v3" and phen.exists():
        leak = update_phenomena(pooled, phen, out)["context_leakage"]
        print(f"context leakage written into {phen}: " + ", ".join(f"{m} {v:.1f}%" for m, v in leak.items()))
    print((out / "table.md").read_text())
    if getattr(args, "docs", None):
        path = Path(args.docs)
        section = docs_section(report, balanced, balanced_seeds(report)) + (f"\n{pattern}" if pattern else "")
        path.write_text(fill_section(path.read_text(), section, *markers(getattr(args, "world", "v2b"))))
        print(f"table section of {path} refilled")
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("sweep", "table", "all", "merge", "status"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="results", help="parent of world-sweep/ and world-table/ (default results)")
    p.add_argument("--world", default="v2b", choices=tuple(WORLD_MODELS),
                   help="the ActionWorld version (default v2b; v3 writes world-v3-sweep/ and world-v3-table/, on --model world-v3)")
    p.add_argument("--images-seen", type=int, default=600)
    p.add_argument("--sweep-action", default="salute",
                   help="the action the rates are chosen on (default salute: the unnamed action the world model draws least by default, so only learning can score)")
    p.add_argument("--n", type=int, default=4, help="images per subject in the sweep (default 4)")
    p.add_argument("--n-table", type=int, default=8, help="images per subject x action in the table (default 8)")
    p.add_argument("--actions", help="comma-separated world actions of this part (default all 8)")
    p.add_argument("--methods", help="comma-separated method names of this part (default every method and ablation)")
    p.add_argument("--seeds", default="0,1,2", help="learning seeds of this part (default 0,1,2)")
    p.add_argument("--part", default="main", help="this part's name: its report goes to world-table/parts/PART")
    p.add_argument("--docs", help="with merge: refill the table section of this markdown file (docs/actionworld.md)")
    p.add_argument("--threads", type=int, help="torch threads of this process (default torch's)")
    p.add_argument("--no-merge", action="store_true",
                   help="with table: only write this part's report (skip folding every part into world-table, "
                        "2-3 CPU-min of bootstrap; run merge once after the last part)")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.stage in ("sweep", "all"):
        sweep(args)
    if args.stage in ("table", "all"):
        table(args)
    if args.stage == "merge":
        merge(args)
    if args.stage == "status":
        status(args)
