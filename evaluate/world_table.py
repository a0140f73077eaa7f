"""The full ActionWorld method table of issue #11, in two resumable stages.

    python -m evaluate.world_table sweep  [--device cuda]   # each learner's learning rate, once, on one action
    python -m evaluate.world_table table  [--device cuda]   # 8 actions x every method and ADI ablation x 3 seeds
    python -m evaluate.world_table all    [--device cuda]

Budgets are equal in exemplar images seen (``--images-seen``, default 600: TI 300 steps at
batch 2, P+ 75 at batch 8, ADI 600 triples), not the papers' step counts made for SD at
512 px. ``sweep`` runs every learner at each rate of :data:`SWEEP` on ``--sweep-action``
(one learning seed, ``--n`` images per subject) into ``results/world-sweep`` and writes
``chosen_lr.json`` (highest total, ties broken by action accuracy). ``table`` reads it
and runs the whole table into ``results/world-table`` with intervals and paired tests
against ADI (``table.md``). Both stages use ``actionbench demo``'s ``--resume``: a run cut
short continues where it stopped. ADI's ablations take ADI's chosen rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from actionbench.demo import DemoSettings, parse_method_spec, run_demo, write_tables

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
ADI_ABLATIONS = ("adi:mask=none", "adi:layerwise=false", "adi:mask=union", "adi:mask=context-only", "adi:mask=action-only")


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


def table_specs(chosen: dict[str, float]) -> list[str]:
    """The table's methods: the two that learn nothing, every learner at its chosen rate,
    ADI's ablations at ADI's."""
    return (list(FIXED) + [f"{m}:lr={chosen[m]:g}" for m in SWEEP]
            + [f"{a}:lr={chosen['adi']:g}" for a in ADI_ABLATIONS])


def sweep(args) -> dict:
    out = Path(args.out) / "world-sweep"
    s = DemoSettings(actions=(args.sweep_action,), methods=tuple(sweep_specs()), n=args.n, images_seen=args.images_seen,
                     learn_seeds=(0,), device=args.device)
    report = run_demo(s, out, resume=True)
    write_tables(report, out)
    chosen = choose_lr(report["results"][args.sweep_action])
    (out / "chosen_lr.json").write_text(json.dumps({"action": args.sweep_action, "images_seen": args.images_seen,
                                                    "lr": chosen}, indent=1))
    print("chosen learning rates:", chosen)
    return chosen


def table(args) -> None:
    path = Path(args.out) / "world-sweep" / "chosen_lr.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the sweep first (python -m evaluate.world_table sweep)")
    specs = table_specs(json.loads(path.read_text())["lr"])
    from actionbench.world.benchmark import BENCH_DIR

    actions = tuple(sorted(p.name for p in BENCH_DIR.iterdir() if p.is_dir()))
    s = DemoSettings(actions=actions, methods=tuple(specs), n=args.n_table, images_seen=args.images_seen,
                     learn_seeds=(0, 1, 2), device=args.device)
    out = Path(args.out) / "world-table"
    report = run_demo(s, out, resume=True)
    write_tables(report, out)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("sweep", "table", "all"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="results", help="parent of world-sweep/ and world-table/ (default results)")
    p.add_argument("--images-seen", type=int, default=600)
    p.add_argument("--sweep-action", default="handstand")
    p.add_argument("--n", type=int, default=4, help="images per subject in the sweep (default 4)")
    p.add_argument("--n-table", type=int, default=8, help="images per subject x action in the table (default 8)")
    args = p.parse_args()
    if args.stage in ("sweep", "all"):
        sweep(args)
    if args.stage in ("table", "all"):
        table(args)
