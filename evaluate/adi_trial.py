"""ADI on trial (issue #21): experiments that ask why ADI loses on the v2b world, as one table.

    python -m evaluate.adi_trial run --experiment mask-controls --part c1 --actions salute,cheer --seeds 0 --threads 1
    python -m evaluate.adi_trial table          # results/adi-trial/table.csv, table.md, kept.json
    python -m evaluate.adi_trial budget-table   # results/adi-trial/budget.md: experiment 1 within its actions
    python -m evaluate.adi_trial run --world v3 --experiment relative-mask --part r1 --actions salute --seeds 0
    python -m evaluate.adi_trial status --world v3   # the runs done and to run, and the CPU they take

``--world v3`` runs the same experiments on ActionWorld v3 (issue #23): rates from
``results/world-v3-sweep``, references from ``results/world-v3-table``, parts and tables in
``results/adi-trial-v3``.

Each experiment is a list of ``actionbench demo`` method specs run exactly as the world
table runs its methods (``evaluate.world_table``: 72 images per run, 600 exemplar images
seen unless a spec says ``steps=``, the world judge, ADI's chosen rate from
``results/world-sweep``), in parts under ``results/adi-trial/parts/PART`` (``--resume``:
a killed part continues). ``table`` merges the parts with the world table's own runs of
ADI, P+ and ADI's ablations (``results/world-table/demo.json``: the same image slots, so
the tests are paired) and writes one row per (experiment, method spec): accuracies pooled
over actions and learning seeds with 95% cluster-bootstrap intervals, the paired
difference to ADI and to P+ on the slots both hold (paired bootstrap p), and both leakage
columns (animals drawn human; on v3 the context leak with its interval).

Experiments:

- ``mask-controls``: the paper's controls (Fig. 6) at ADI's kept share: random, uniform,
  min and max masks dropping 56 of 64 channels (beta 0.875, 12.5% kept; ADI keeps 12.3%),
  and a random mask at the context mask's share (beta 0.6, 40.6%).
- ``discarded``: ADI with ``masked_update: discarded`` (Eq. 10 read literally).
- ``relative-mask``: ADI's masks on relative differences (``mask: relative``, ours).
- ``budget-sweep`` (salute only, seed 0) then ``budget``: ADI, ADI without masks, P+ and TI
  at the papers' step counts, each learner's rate chosen again on salute by the world
  sweep's rule (``budget_lr.json``). The sweep's salute runs at the chosen rates are the
  budget rows' salute seed 0, so ``budget`` runs salute with ``--seeds 1,2`` and
  ``budget-extra`` adds ADI without masks' salute seed 0. ``budget-table`` compares the
  budget rows with each other and with the same learners at 600 images, on the actions
  the budget parts ran (``budget.md``). The sweep can run as parallel parts, one per
  learner (``--learners adi --part bs1``, ``--learners pplus,textual-inversion --part bs2``):
  each adds its choice to ``budget_lr.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from actionbench.world.worlds import WORLDS

from .demo import (
    DemoSettings,
    _animal_counts,
    _leak_slots,
    _shared_seeds,
    _slots,
    demo_config,
    merge_reports,
    parse_method_spec,
    run_demo,
    run_name,
    world_actions,
    write_tables,
)
from .progress import part_reports, progress_rows, progress_table
from .world_table import balanced_parts

EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "mask-controls": ("adi:mask=random:beta=0.875", "adi:mask=uniform:beta=0.875", "adi:mask=min:beta=0.875",
                      "adi:mask=max:beta=0.875", "adi:mask=random:beta=0.6"),
    "discarded": ("adi:masked_update=discarded",),
    # (ours) the variant the informativeness measure points to: ADI's masks on relative
    # differences, at ADI's beta and rate (nothing tuned)
    "relative-mask": ("adi:mask=relative",),
}
# Experiment 1: the papers' own budgets (methods/defaults): ADI 3000 triples, P+ 500 steps of
# batch 8, TI 3000 of batch 2; the rate chosen again on salute by the world sweep's rule
BUDGET = {"adi": "adi:steps=3000", "pplus": "pplus:steps=500", "textual-inversion": "textual-inversion:steps=3000"}
BUDGET_RATES = (1e-3, 5e-3, 2e-2)  # the world sweep's rates of the token learners
EXPERIMENTS["budget-sweep"] = tuple(f"{s}:lr={lr:g}" for s in BUDGET.values() for lr in BUDGET_RATES)
EXPERIMENTS["budget"] = (*BUDGET.values(), "adi:mask=none:steps=3000")
# on the sweep's action and seed 0 the sweep's own runs are the budget rows; only ADI without masks runs there
EXPERIMENTS["budget-extra"] = ("adi:mask=none:steps=3000",)
BUDGET_LR = "budget_lr.json"  # results/adi-trial/: the budget sweep's chosen rates

# the world table's rows the trial is read against (results/world-table, 3 seeds x 8 actions)
REFERENCES = ("adi", "pplus", "adi:mask=none", "adi:mask=context-only", "adi:mask=action-only", "textual-inversion")
COLUMNS = ("experiment", "method", "images_seen", "runs", "action", "subject", "total", "total_ci_low", "total_ci_high",
           "delta_vs_adi", "p_vs_adi", "delta_vs_pplus", "p_vs_pplus", "kept_share", "cpu_minutes",
           # appended for v3 (issue #23's two leakage columns; issue #21's columns above are unchanged):
           # percent of animal subjects drawn human, and the v3 context leak with its 95% interval ("" on v2b)
           "animals_drawn_human", "context_leak", "context_leak_ci_low", "context_leak_ci_high")


def with_rate(spec: str, chosen: dict[str, float]) -> str:
    """``spec`` with its learner's chosen rate appended, as the world table writes its specs."""
    name, options = parse_method_spec(spec)
    return spec if "lr" in options or name not in chosen else f"{spec}:lr={chosen[name]:g}"


def folders(results: Path, world: str = "v2b") -> tuple[Path, Path, Path]:
    """(world sweep, world table, trial) folders under ``results``: ``world-sweep``,
    ``world-table``, ``adi-trial`` on v2b; ``world-v3-sweep``, ``world-v3-table``,
    ``adi-trial-v3`` on v3."""
    tag = "" if world == "v2b" else f"-{world}"
    return results / f"world{tag}-sweep", results / f"world{tag}-table", results / f"adi-trial{tag}"


def chosen_rates(results: Path, world: str = "v2b") -> dict[str, float]:
    path = folders(results, world)[0] / "chosen_lr.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the sweep first (python -m evaluate.world_table sweep --world {world})")
    return json.loads(path.read_text())["lr"]


def run(args) -> None:
    results, world = Path(args.out), args.world
    trial = folders(results, world)[2]
    chosen = chosen_rates(results, world)
    if args.experiment in ("budget", "budget-extra"):
        path = trial / BUDGET_LR
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the budget sweep first "
                             f"(python -m evaluate.adi_trial run --world {world} --experiment budget-sweep --part bs --actions salute --seeds 0)")
        sweep = json.loads(path.read_text())
        chosen = sweep["lr"]
    if args.experiment == "budget":
        sweep_action = sweep["action"]
        if sweep_action in args.actions.split(",") and 0 in [int(x) for x in args.seeds.split(",")]:
            raise SystemExit(f"{sweep_action} seed 0 of the swept learners is the budget sweep's own run: run "
                             f"{sweep_action} with --seeds 1,2, and its seed 0 with --experiment budget-extra")
    specs = [with_rate(s, chosen) for s in EXPERIMENTS[args.experiment]]
    if getattr(args, "learners", None):  # e.g. the budget sweep split into one part per learner, run side by side
        names = args.learners.split(",")
        unknown = sorted(set(names) - {parse_method_spec(s)[0] for s in specs})
        if unknown:
            raise SystemExit(f"--learners {', '.join(unknown)}: not in experiment {args.experiment} "
                             f"({', '.join(dict.fromkeys(parse_method_spec(s)[0] for s in specs))})")
        specs = [s for s in specs if parse_method_spec(s)[0] in names]
    actions = tuple(args.actions.split(","))
    s = DemoSettings(actions=actions, methods=tuple(specs), n=8, images_seen=600, world=world,
                     learn_seeds=tuple(int(x) for x in args.seeds.split(",")), device=args.device)
    out = trial / "parts" / args.part
    report = run_demo(s, out, resume=True)
    write_tables(report, out)
    update_kept(trial)
    if args.experiment == "budget-sweep":
        from .world_table import choose_lr

        action = actions[0]
        lr = choose_lr(report["results"][action])
        path = trial / BUDGET_LR
        if path.exists():  # parts that swept other learners (one per process) on the same action keep their choice
            before = json.loads(path.read_text())
            if before.get("action") == action:
                lr = {**before["lr"], **lr}
        path.write_text(json.dumps({"action": action, "lr": lr}, indent=1))
        print("chosen at the papers' budgets:", lr)


def update_kept(trial: Path) -> dict[str, float]:
    """``kept.json``: per run, the mean share of channels its masks kept, read from the parts'
    training logs (``parts/*/learned``, not committed) and kept across clones in this file."""
    from .world_table import mask_kept

    path = trial / "kept.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    for learned in sorted(trial.glob("parts/*/learned")):
        kept.update(mask_kept(learned))
    if kept:
        path.write_text(json.dumps(kept, indent=1, sort_keys=True))
    return kept


def experiment_of(spec: str, chosen: dict[str, float], budget: dict[str, float] | None = None) -> str:
    names = sorted(EXPERIMENTS, key=lambda n: not n.startswith("budget") or n == "budget-sweep")  # budget rows first
    for name in names:
        specs = EXPERIMENTS[name]
        if name.startswith("budget") and name != "budget-sweep":
            if not budget:
                continue
            rates = budget
        else:
            rates = chosen
        if spec in (with_rate(s, rates) for s in specs):
            return name
    return "world table"


def trial_plan(results: Path, world: str = "v2b", actions: tuple[str, ...] | None = None,
               seeds: tuple[int, ...] = (0, 1, 2)) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
    """Every experiment's specs (the budget rows once ``budget_lr.json`` exists) as
    (spec, actions, learning seeds), for :mod:`evaluate.progress`."""
    trial = folders(results, world)[2]
    actions = actions or world_actions(world)
    chosen = chosen_rates(results, world)
    specs = [with_rate(s, chosen) for name in ("mask-controls", "discarded", "relative-mask") for s in EXPERIMENTS[name]]
    if (trial / BUDGET_LR).exists():
        budget = json.loads((trial / BUDGET_LR).read_text())["lr"]
        specs += [with_rate(s, budget) for s in EXPERIMENTS["budget"]]
    return [(s, actions, seeds) for s in specs]


def merged_report(results: Path, world: str = "v2b") -> dict:
    """The world table's reference rows and every trial part, as one report. A trial part's
    runs count only where the part's learning seeds are among those its method ran on every
    action it ran (:func:`evaluate.world_table.balanced_parts`):
    a seed run on a few actions so far (a part still running or cut short) would weigh those
    actions more in pooled rows; it joins once the seed has run on every action. (The budget
    table pools, besides, only the actions where all its rows ran.)"""
    _, table_dir, trial = folders(results, world)
    chosen = chosen_rates(results, world)
    table = json.loads((table_dir / "demo.json").read_text())
    refs = [with_rate(s, chosen) for s in REFERENCES]
    reference_only = {**table, "results": {a: {m: r for m, r in by.items() if m in refs} for a, by in table["results"].items()}}
    parts = part_reports(trial / "parts")
    if parts:
        parts = balanced_parts(parts, merge_reports(parts))
    return merge_reports([reference_only, *parts])


def trial_table(results: Path, n_boot: int = 2000, world: str = "v2b") -> tuple[list[dict], dict]:
    """The rows of ``table.csv`` and the merged report (world-table references + trial parts)."""
    from .paired import bootstrap_ci, paired_bootstrap

    _, table_dir, trial = folders(results, world)
    chosen = chosen_rates(results, world)
    table = json.loads((table_dir / "demo.json").read_text())
    refs = [with_rate(s, chosen) for s in REFERENCES]
    report = merged_report(results, world)
    kept = {**table.get("mask_kept", {}), **update_kept(trial)}
    budget_path = trial / BUDGET_LR
    budget = json.loads(budget_path.read_text())["lr"] if budget_path.exists() else None
    adi, pplus = with_rate("adi", chosen), with_rate("pplus", chosen)
    specs = list(dict.fromkeys(refs + [m for by in report["results"].values() for m in by]))
    rows = []
    for m in specs:
        actions = [a for a, by in report["results"].items() if m in by]
        if not actions:
            continue
        tot, act, sub, cl = _slots(report, m, actions)
        seeds = {a: report["results"][a][m].get("seeds", [0]) for a in actions}
        run_keys = [(a, sd) for a in actions for sd in sorted(set(seeds[a]))]
        shares = [kept[k] for a, sd in run_keys if (k := run_name(a, m, sd)) in kept]
        secs = sum(report["seconds"].get(f"{a}/{m}/seed{sd}", 0.0) for a, sd in run_keys)  # the runs counted
        _, config = demo_config(m, DemoSettings(**{k: report["settings"][k] for k in ("steps", "lr", "n", "images_seen")},
                                                world=world))
        low_high = bootstrap_ci(tot, cl, n_boot)
        human, animals = _animal_counts(report, m, actions)
        leaks, leak_cl = _leak_slots(report, m, actions)
        leak = [100 * x for x in bootstrap_ci(leaks, leak_cl, n_boot)] if leaks else ["", "", ""]
        row = {"experiment": experiment_of(m, chosen, budget), "method": m, "images_seen": config.steps * config.batch_size,
               "runs": len(run_keys), "action": 100 * sum(act) / len(act), "subject": 100 * sum(sub) / len(sub),
               "total": 100 * low_high[0], "total_ci_low": 100 * low_high[1], "total_ci_high": 100 * low_high[2],
               "kept_share": round(sum(shares) / len(shares), 4) if shares else "", "cpu_minutes": round(secs / 60, 1),
               "animals_drawn_human": 100 * human / animals if animals else "",
               "context_leak": leak[0], "context_leak_ci_low": leak[1], "context_leak_ci_high": leak[2]}
        for ref, col in ((adi, "adi"), (pplus, "pplus")):
            shared = _shared_seeds(report, m, ref, actions)
            if m == ref or not shared:
                row[f"delta_vs_{col}"], row[f"p_vs_{col}"] = "", ""
                continue
            a_tot, _, _, a_cl = _slots(report, m, list(shared), shared)
            r_tot = _slots(report, ref, list(shared), shared)[0]
            pb = paired_bootstrap(a_tot, r_tot, a_cl, n_boot)
            row[f"delta_vs_{col}"], row[f"p_vs_{col}"] = 100 * pb["diff"], pb["p"]
        rows.append(row)
    return rows, report


def budget_report(results: Path, world: str = "v2b") -> dict:
    """Experiment 1 alone: the budget specs (the papers' step counts at ``budget_lr.json``'s
    rates) and the same learners at 600 images (the world table's rows), on the actions
    where all the budget specs ran, each spec with the learning seeds it ran on every action
    it ran (a seed on a few actions so far waits, as in :func:`merged_report`)."""
    path = folders(results, world)[2] / BUDGET_LR
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the budget sweep first")
    budget = json.loads(path.read_text())["lr"]
    report = merged_report(results, world)
    chosen = chosen_rates(results, world)
    specs = [with_rate(s, budget) for s in EXPERIMENTS["budget"]]
    specs += [with_rate(s, chosen) for s in ("adi", "adi:mask=none", "pplus", "textual-inversion")]
    # the actions where every budget spec has run (a part still running leaves its action out)
    actions = [a for a, by in report["results"].items() if all(m in by for m in specs[:len(EXPERIMENTS["budget"])])]
    if not actions:
        raise SystemExit("no action has all the budget rows yet (python -m evaluate.adi_trial run --experiment budget ...)")
    return {**report, "results": {a: {m: report["results"][a][m] for m in specs if m in report["results"][a]}
                                  for a in actions}}


def budget_table(results: Path, n_boot: int = 2000, world: str = "v2b") -> str:
    """``budget.md``: per action, then pooled with paired tests against ADI and P+ at the papers' budgets."""
    from .demo import compare_table, table

    trial = folders(results, world)[2]
    report = budget_report(results, world)
    budget = json.loads((trial / BUDGET_LR).read_text())["lr"]
    adi, pplus = with_rate(EXPERIMENTS["budget"][0], budget), with_rate(EXPERIMENTS["budget"][1], budget)
    runs = {m: sum(len(set(by[m].get("seeds", [0]))) for by in report["results"].values() if m in by)
            for m in dict.fromkeys(m for by in report["results"].values() for m in by)}
    text = (f"Experiment 1 on {', '.join(report['results'])} (learning runs per method: "
            + ", ".join(f"{m} {n}" for m, n in runs.items()) + ").\n\n" + table(report)
            + f"\n\nPooled, paired against {adi}:\n\n" + compare_table(report, adi, n_boot)
            + f"\n\nPooled, paired against {pplus}:\n\n" + compare_table(report, pplus, n_boot) + "\n")
    (trial / "budget.md").write_text(text)
    return text


def write_table(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "table.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    lines = ["| experiment | method | images seen | runs | action | subject | total [95% CI] | total - ADI | p | "
             "total - P+ | p | kept share | CPU-min | animals drawn human | context leak [95% CI] |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def d(r, k):
        return "-" if r[k] == "" else f"{r[k]:+.1f}"

    def p(r, k):
        return "-" if r[k] == "" else ("< 0.001" if r[k] < 0.001 else f"{r[k]:.3f}")

    for r in rows:
        kept = "-" if r["kept_share"] == "" else f"{100 * r['kept_share']:.1f}%"
        human = "-" if r["animals_drawn_human"] == "" else f"{r['animals_drawn_human']:.1f}%"
        leak = ("-" if r["context_leak"] == "" else
                f"{r['context_leak']:.1f}% [{r['context_leak_ci_low']:.1f}, {r['context_leak_ci_high']:.1f}]")
        lines.append(f"| {r['experiment']} | {r['method']} | {r['images_seen']} | {r['runs']} | {r['action']:.1f}% | "
                     f"{r['subject']:.1f}% | {r['total']:.1f}% [{r['total_ci_low']:.1f}, {r['total_ci_high']:.1f}] | "
                     f"{d(r, 'delta_vs_adi')} | {p(r, 'p_vs_adi')} | {d(r, 'delta_vs_pplus')} | {p(r, 'p_vs_pplus')} | {kept} | "
                     f"{r['cpu_minutes']:.0f} | {human} | {leak} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("run", "table", "budget-table", "status"))
    p.add_argument("--experiment", choices=sorted(EXPERIMENTS), help="with run: which experiment's specs")
    p.add_argument("--part", help="with run: this part's name (results/adi-trial/parts/PART)")
    p.add_argument("--actions", default="cheer,gesture,handstand,meditate,pray,salute,sit,squat")
    p.add_argument("--seeds", default="0,1,2", help="learning seeds of this part (default 0,1,2)")
    p.add_argument("--learners", help="with run: only these learners of the experiment (e.g. adi; the budget sweep's "
                                      "parts, one per learner, each add their choice to budget_lr.json)")
    p.add_argument("--out", default="results", help="parent of world-sweep/, world-table/ and adi-trial/")
    p.add_argument("--world", default="v2b", choices=tuple(WORLDS),
                   help="the ActionWorld version (default v2b; v3 reads world-v3-sweep/ and world-v3-table/, writes adi-trial-v3/)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads of this process (default torch's)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.stage == "run":
        if not (args.experiment and args.part):
            p.error("run needs --experiment and --part")
        run(args)
    elif args.stage == "budget-table":
        print(budget_table(Path(args.out), world=args.world))
    elif args.stage == "status":
        results = Path(args.out)
        plan = trial_plan(results, args.world, tuple(args.actions.split(",")), tuple(int(x) for x in args.seeds.split(",")))
        _, table_dir, trial = folders(results, args.world)  # the world table's runs estimate specs not run yet
        print(progress_table(progress_rows(plan, part_reports(trial / "parts"), part_reports(table_dir / "parts"))))
    else:
        rows, report = trial_table(Path(args.out), world=args.world)
        out = folders(Path(args.out), args.world)[2]
        write_table(rows, out)
        print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
