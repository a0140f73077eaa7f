"""``actionbench speed``: the benchmark as one Python call (``run_speed``) and as a command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from evaluate.speed.counts import floor_counts
from evaluate.speed.end_to_end import end_to_end
from evaluate.speed.models import PRECISIONS, Setting, arch_names, build, load_arch, resolution
from evaluate.speed.report import annotate, format_table, machine, merge_counts
from evaluate.speed.steps import VARIANTS
from evaluate.speed.timing import measure


def run_speed(model: str = "tiny", device: str = "cpu", precisions=("fp32",), checkpointing=(False,),
              variants=VARIANTS, iters: int = 3, warmup: int = 1, count: bool = True, e2e: bool = False,
              gen_steps: int = 50, log=print, partial_out: Path | None = None) -> dict:
    """The whole benchmark as a Python call; returns the result dict (see ``format_table``)."""
    arch = load_arch(model)
    settings = [Setting(p, c) for p in precisions for c in checkpointing]
    probe = build(arch, "meta")
    result = {
        "model": arch["name"], "device": device, "resolution": resolution(probe), "machine": machine(),
        "iters": iters, "warmup": warmup, "variants": list(variants),
        "floor_counts": floor_counts(arch) if count else None,
    }
    del probe
    def save_partial(rows):
        if partial_out is not None:
            partial_out.parent.mkdir(parents=True, exist_ok=True)
            partial_out.write_text(json.dumps({**result, "rows": rows, "partial": True}, indent=1))

    result["rows"] = measure(arch, device, settings, list(variants), iters, warmup, count, log, on_rows=save_partial)
    annotate(result["rows"])
    result["end_to_end"] = []
    if e2e and iters > 0:
        for setting in settings:
            if setting.checkpointing:
                continue
            adi = {r["variant"]: r["median_s"] for r in result["rows"] if r["setting"] == setting.label}
            try:  # the step table stands on its own; one failing estimate should not lose it
                result["end_to_end"].append(end_to_end(arch, device, setting, adi, iters, gen_steps, log=log))
            except (RuntimeError, ValueError) as err:
                log(f"  {setting.label:10s} end to end failed: {type(err).__name__}: {err}")
                result["end_to_end"].append({"setting": setting.label, "error": f"{type(err).__name__}: {err}"})
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return result



def cmd_speed(args) -> None:
    from actionbench.errors import ActionBenchError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precisions = args.dtype.split(",")
    for p in precisions:
        if p not in PRECISIONS:
            raise ActionBenchError(f"--dtype {p}: one of {', '.join(PRECISIONS)}")
    variants = args.steps_to_time.split(",") if args.steps_to_time else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ActionBenchError(f"--variants {','.join(unknown)}: one of {', '.join(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = {"off": (False,), "on": (True,), "both": (False, True)}[args.checkpointing]
    counts_from = Path(args.counts) if args.counts else None
    if counts_from is not None and not counts_from.is_file():
        raise ActionBenchError(f"--counts {counts_from}: no such file (write one with --iters 0)")
    out = Path(args.out or f"results/speed-{load_arch(args.model)['name']}-{device}.json")
    result = run_speed(args.model, device, precisions, ckpt, variants, args.iters, args.warmup,
                       count=not (args.no_count or counts_from), e2e=args.e2e, gen_steps=args.gen_steps,
                       partial_out=out.with_suffix(".partial.json"))
    if counts_from is not None:
        merge_counts(result, json.loads(counts_from.read_text()))
        annotate(result["rows"])
    result["command"] = " ".join(["actionbench", *sys.argv[1:]]) if sys.argv[0].endswith(("actionbench", "__main__.py")) else None
    print(format_table(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    partial = out.with_suffix(".partial.json")
    if partial.exists():
        partial.unlink()
    print(f"wrote {out}")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "speed", help="time ADI / TI training steps against the floor",
        description="Time training steps (naive and fused ADI, Textual Inversion, the plain UNet floor) on a "
        "Stable Diffusion architecture built from its config with random weights; optionally the end-to-end "
        "time to learn one action. Prints a table and writes JSON.",
    )
    p.add_argument("--model", default="tiny", help=f"architecture: {', '.join(arch_names())}, or a config .json (default tiny)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="fp32", help="precision(s) of the frozen weights, comma-separated: fp32,bf16,fp16 (default fp32)")
    p.add_argument("--checkpointing", default="off", choices=["off", "on", "both"], help="UNet gradient checkpointing (default off)")
    p.add_argument("--variants", dest="steps_to_time", help=f"steps to time, comma-separated (default all: {','.join(VARIANTS)})")
    p.add_argument("--iters", type=int, default=3, help="timed steps per variant, median reported (0: count only; default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first (default 1)")
    p.add_argument("--no-count", action="store_true", help="skip the FLOP / activation counts on the meta device")
    p.add_argument("--counts", help="take the counts from this JSON of an earlier `--iters 0` run instead of counting")
    p.add_argument("--e2e", action="store_true", help="also the end-to-end time to learn one action, paper recipe vs suite")
    p.add_argument("--gen-steps", type=int, default=50, help="DDIM steps timed for generation in --e2e, scaled to 50 (default 50)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--out", help="JSON file to write (default results/speed-MODEL-DEVICE.json)")
    p.set_defaults(func=cmd_speed)
