"""``actionbench run | judge | tables | agreement | report``: thin calls into ``evaluate``'s Python API."""

from __future__ import annotations

from pathlib import Path

from actionbench.errors import ActionBenchError


def _run_dir(path: str) -> Path:
    p = Path(path)
    if not (p / "run.yaml").exists() and not (p / "manifest").is_dir():
        raise ActionBenchError(f"{p}: not a run folder (no run.yaml; make one with `actionbench run --config ...`)")
    return p


# -- run -------------------------------------------------------------------------------


def cmd_run(args) -> None:
    from .config import RunConfig
    from .runner import run

    config = RunConfig.from_yaml(args.config, out=args.out, device=args.device)
    run_dir = run(config)
    print(f"run folder: {run_dir} (report: {run_dir / 'report.html'})")


def add_run(sub) -> None:
    p = sub.add_parser("run", help="run methods x actions x subjects (resumable)",
                       description="Learn each action with each method, generate K images per subject, judge, write a report. "
                                   "Rerunning skips finished work. Multi-GPU: accelerate launch -m actionbench run ...")
    p.add_argument("--config", required=True, help="run config YAML, or a shipped one by name: paper, tiny")
    p.add_argument("--out", help="run folder (default results/<name>)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available; accelerate picks per process)")
    p.set_defaults(func=cmd_run)


# -- judge -----------------------------------------------------------------------------


def cmd_judge(args) -> None:
    from .config import RunConfig
    from .runner import finish, judge_images, load_run_benchmark, resolve_subjects

    run_dir = _run_dir(args.run_dir)
    config = RunConfig.from_yaml(run_dir / "run.yaml", out=str(run_dir))
    apply_judge_options(config, args)
    action_sets = load_run_benchmark(config)
    counts = judge_images(run_dir, config, args.judges, action_sets, resolve_subjects(config), device=args.device or "cpu",
                          strict=True)
    finish(run_dir, config, action_sets)
    print(", ".join(f"{k}: {v} new verdicts" for k, v in counts.items()))


def apply_judge_options(config, args) -> None:
    """``--option JUDGE.NAME=VALUE`` and ``--judge-model`` (the vqa judge's model) into ``config.judge_options``."""
    for opt in args.option or []:
        key, _, value = opt.partition("=")
        judge, _, name = key.partition(".")
        if not name or not value:
            raise ActionBenchError(f"--option {opt!r}: expected JUDGE.NAME=VALUE, e.g. clip.model=ViT-B-32")
        config.judge_options.setdefault(judge, {})[name] = value
    if getattr(args, "judge_model", None):
        if "vqa" not in args.judges:  # the flag would do nothing: say so rather than judge with another judge
            raise ActionBenchError("--judge-model is the vqa judge's model; add vqa to --judges (e.g. --judges vqa)")
        config.judge_options.setdefault("vqa", {})["model"] = args.judge_model


def cmd_judge_validate(args) -> None:
    from actionbench.bench import load_benchmark

    from .judges.pose import leave_one_out
    from .tables import to_markdown

    result = leave_one_out(load_benchmark(args.benchmark))
    right = sum(r["predicted"] == r["action"] for r in result.rows)
    print(f"pose judge, leave-one-out over {len(result.rows)} photos: {100 * result.accuracy:.2f}% ({right}/{len(result.rows)})")
    print("\nper action:")
    for action, (r, n) in result.per_action().items():
        print(f"  {action:10s} {100 * r / n:6.1f}%  ({r}/{n})")
    print("\nconfusion (rows: true action, columns: predicted):\n")
    print(to_markdown(result.confusion().reset_index()))
    misses = [r for r in result.rows if r["predicted"] != r["action"]]
    if misses:
        print("\nmisses: " + ", ".join(f"{r['key']} -> {r['predicted'] or 'no person found'}" for r in misses))


def cmd_judge_list(args) -> None:
    from .judges import available_judges

    for name, cls in available_judges().items():
        print(f"{name}\n  sees:     {cls.sees}\n  blind to: {cls.blind_to}")


def add_judge(sub) -> None:
    p = sub.add_parser("judge", help="judge a run's images; validate or list the judges",
                       description="actionbench judge RUN_DIR --judges pose clip | judge validate BENCHMARK | judge list")
    p.add_argument("run_dir", help="run folder, or 'validate' / 'list'")
    p.add_argument("benchmark", nargs="?", help="(validate) benchmark folder (default ../shared/ActionBench)")
    p.add_argument("--judges", nargs="+", default=["pose"], help="judges to run (default pose; see `judge list`)")
    p.add_argument("--option", action="append", help="judge option JUDGE.NAME=VALUE (e.g. clip.pretrained=/path/ckpt.bin)")
    p.add_argument("--judge-model", help="the vqa judge's model: a hub id or a local folder (default Qwen/Qwen2-VL-2B-Instruct; "
                                         "same as --option vqa.model=...)")
    p.add_argument("--device", help="device for judges with a network (default cpu)")
    p.set_defaults(func=_judge_dispatch)


def _judge_dispatch(args) -> None:
    # `judge validate DIR` and `judge list` share the parser with `judge RUN_DIR` (argparse
    # cannot mix a positional with sub-subcommands), so the first word picks.
    if args.run_dir == "validate":
        args.benchmark = args.benchmark or "../shared/ActionBench"
        return cmd_judge_validate(args)
    if args.run_dir == "list":
        return cmd_judge_list(args)
    if args.benchmark:
        raise ActionBenchError(f"unexpected argument {args.benchmark!r} (usage: actionbench judge RUN_DIR --judges ...)")
    return cmd_judge(args)


# -- tables ----------------------------------------------------------------------------


def cmd_tables(args) -> None:
    from .tables import build_tables, format_tables

    tables = build_tables(_run_dir(args.run_dir), source=args.source, paper=args.paper)
    text = format_tables(tables, args.format)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)


def add_tables(sub) -> None:
    p = sub.add_parser("tables", help="accuracy tables of a run (human ratings and/or judges)",
                       description="Action, subject and total accuracy per method with 95%% intervals, per action and "
                                   "overall; agreement between raters and between raters and judges.")
    p.add_argument("run_dir", help="run folder")
    p.add_argument("--format", default="md", choices=["md", "csv", "latex"], help="output format (default md)")
    p.add_argument("--source", default="all", help="all (= both), human, judges, or judge:NAME (default all)")
    p.add_argument("--paper", action="store_true", help="print the paper's Table 1 beside ours")
    p.add_argument("--out", help="write to this file instead of printing")
    p.set_defaults(func=cmd_tables)


# -- agreement -------------------------------------------------------------------------


def cmd_agreement(args) -> None:
    from .agreement import run_agreement
    from .tables import format_tables

    run_dir = _run_dir(args.run_dir)
    tables = run_agreement(run_dir, bootstrap_samples=args.bootstrap, seed=args.seed)
    out = Path(args.out) if args.out else run_dir / "agreement.csv"
    tables["long"].to_csv(out, index=False)
    pairs = out.with_name(out.stem + "_pairs.csv")
    tables["rater pairs"].to_csv(pairs, index=False)
    if args.format == "csv":
        print(tables["long"].to_csv(index=False))
    else:
        print(format_tables(tables, args.format))
    print(f"wrote {out} and {pairs}")


def add_agreement(sub) -> None:
    p = sub.add_parser("agreement", help="agreement between raters and of each judge with the raters' majority",
                       description="Per question and per method: raw agreement, Cohen's kappa (rater pairs), "
                                   "Krippendorff's alpha (all raters, nominal, missing answers allowed), and each "
                                   "judge against the majority human answer (accuracy, kappa, alpha, alpha as a share "
                                   "of the human-human alpha), with 95% bootstrap intervals over images. Writes "
                                   "RUN/agreement.csv (long table) and RUN/agreement_pairs.csv.")
    p.add_argument("run_dir", help="run folder with ratings (actionbench annotate)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the images (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--format", default="md", choices=["md", "csv", "latex"], help="what to print (default md)")
    p.add_argument("--out", help="the long table's CSV (default RUN/agreement.csv)")
    p.set_defaults(func=cmd_agreement)


# -- report ----------------------------------------------------------------------------


def cmd_report(args) -> None:
    import yaml

    from actionbench.bench import load_benchmark

    from .report import write_report

    run_dir = _run_dir(args.run_dir)
    saved = yaml.safe_load((run_dir / "run.yaml").read_text()) or {}
    action_sets = {}
    if saved.get("benchmark"):  # the exemplars beside each action; the report works without them
        try:
            action_sets = load_benchmark(saved["benchmark"], verify_images=False)
        except (ActionBenchError, OSError) as err:
            print(f"exemplars left out ({saved['benchmark']}: {err})")
    print(f"wrote {write_report(run_dir, action_sets, args.out)}")


def add_report(sub) -> None:
    p = sub.add_parser("report", help="write a run's report.html again (figures, agreement, per-image drill-down)",
                       description="Writes RUN/report.html and RUN/figures/*.png from the run's images, judge "
                                   "verdicts and ratings: run it after rating to see the raters in the report.")
    p.add_argument("run_dir", help="run folder")
    p.add_argument("--out", help="the HTML file (default RUN/report.html)")
    p.set_defaults(func=cmd_report)


def add_parsers(sub) -> None:
    add_run(sub)
    add_judge(sub)
    add_tables(sub)
    add_agreement(sub)
    add_report(sub)
