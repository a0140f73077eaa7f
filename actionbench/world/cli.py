"""``actionbench world ...``: render grids, write the benchmark, train the model and judge, measure fidelity.

``add_world_parser(subparsers)`` registers the ``world`` command on the main CLI; every
subcommand's handler (``args.func(args)``) is a thin call into the package's Python API.
``python -m actionbench.world.cli world ...`` runs the same commands stand-alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .worlds import WORLDS

WORLD_NAMES = tuple(WORLDS)  # the --world choices


def _render_grid(args) -> int:
    from .worlds import renderer

    world = renderer(args.world)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.world == "v2b":
        grid = world.render_grid(context=args.context, seed=args.seed, size=args.size)
    else:
        grid = world.render_grid(contexts=[args.context] if args.context else None, seed=args.seed, size=args.size)
    grid.save(args.out)
    print(f"wrote {args.out}")
    return 0


def _bench(args) -> int:
    from .benchmark import write_benchmark
    from .worlds import BENCH_DIRS, renderer

    out = args.out or BENCH_DIRS[args.world]
    print(f"wrote World-ActionBench ({args.world}) to {write_benchmark(out, size=args.size, world=renderer(args.world))}")
    return 0


def _bench_strip(args) -> int:
    from .benchmark import bench_strip
    from .worlds import BENCH_DIRS, renderer

    bench = args.bench or BENCH_DIRS[args.world]
    if not (Path(bench) / args.action).is_dir():
        raise SystemExit(f"no {args.action} folder in {bench}: write the bench first (actionbench world bench --world {args.world})")
    bench_strip(args.action, bench, world=renderer(args.world)).save(args.out)
    print(f"wrote {args.out}")
    return 0


def _train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(out=args.out, seed=args.seed, steps=args.steps, threads=args.threads, world=args.world)
    for name in ("vae_steps", "vae_lr", "init_vae", "init_unet", "decoder_steps", "n_data", "batch", "lr", "ema"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    cfg.init_partial = args.init_partial
    from ..models import world_model_dir

    export_dir = args.export or world_model_dir(cfg.world)
    out = train(cfg, resume=args.resume, export_dir=None if args.no_export else export_dir,
                device=args.device, time_budget_s=args.time_budget, workers=args.workers)
    print(f"trained; pipeline exported to {out}" if out else "trained (not exported)")
    return 0


def _train_controlnet(args) -> int:
    from ..models import WORLD_CONTROLNET_OF, WORLD_CONTROLNETS
    from .controlnet_train import ControlNetTrainConfig, train_controlnet

    cfg = ControlNetTrainConfig(out=args.out, model=args.model, seed=args.seed, steps=args.steps, threads=args.threads,
                                world=args.world)
    for name in ("n_data", "batch", "lr", "ema", "cond_channels"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    export_dir = args.export or WORLD_CONTROLNETS[WORLD_CONTROLNET_OF[cfg.world]]
    out = train_controlnet(cfg, resume=args.resume, export_dir=None if args.no_export else export_dir,
                           device=args.device, time_budget_s=args.time_budget, workers=args.workers)
    print(f"trained; ControlNet exported to {out}" if out else "trained (not exported)")
    return 0


def _export(args) -> int:
    from ..models import world_model_dir
    from .train import export, pipeline_from_checkpoint

    pipe, step, cfg = pipeline_from_checkpoint(args.out)
    dest = args.export or world_model_dir(cfg.world)
    print(f"exported step {step} to {export(pipe, None, dest, step=step, cfg=cfg)}")
    return 0


def _pack_checkpoint(args) -> int:
    from ..models import world_model_dir
    from .checkpoint import describe, pack

    model_dir = args.model_dir
    if model_dir is None:  # the model of the run's world
        world = json.loads((Path(args.run_dir) / "config.json").read_text()).get("world", "v2b") \
            if (Path(args.run_dir) / "config.json").exists() else "v2b"
        model_dir = world_model_dir(world)
    info = describe(pack(args.run_dir, args.dest, model_dir))
    print(f"packed step {info['step']} of {args.run_dir} into {args.dest} ({info['bytes'] / 2**20:.1f} MB)")
    return 0


def _unpack_checkpoint(args) -> int:
    from .checkpoint import packed_step, unpack

    unpack(args.src, args.run_dir, args.model_dir)
    print(f"unpacked step {packed_step(args.src)} into {args.run_dir}; continue with: "
          f"actionbench world train --resume --out {args.run_dir} --steps N")
    return 0


def _refine_decoder(args) -> int:
    from .train import refine_exported_decoder

    print(f"refined decoder written to {refine_exported_decoder(args.model_dir, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads, log_dir=args.log_dir)}")
    return 0


def _train_judge(args) -> int:
    from .judge import train_judge

    rep = train_judge(args.out, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, seed=args.seed,
                      threads=args.threads, world=args.world, width=args.width)
    accs = ", ".join(f"{k[len('heldout_'):-len('_acc')]} {v:.3f}" for k, v in rep.items() if k.startswith("heldout_"))
    print(f"{rep['world']} judge held-out accuracy: {accs}")
    return 0


def _phenomena(args) -> int:
    import torch

    from ..models import WORLD_MODEL_OF, WORLD_MODELS, load_pipeline
    from .phenomena import measure, write
    from .worlds import renderer

    if args.threads:
        torch.set_num_threads(args.threads)
    args.model = args.model or WORLD_MODEL_OF[args.world]
    path = Path(args.fidelity) if args.fidelity else (WORLD_MODELS[args.model] / "fidelity.json" if args.model in WORLD_MODELS else None)
    if path is None or not path.exists():
        print(f"no fidelity report at {path}: give --fidelity (made by actionbench world fidelity --model {args.model} --out FILE)")
        return 2
    rep = measure(load_pipeline(args.model), json.loads(path.read_text()), args.name or args.world, n=args.n, seed=args.seed,
                  world=renderer(args.world))
    for other in args.compare or []:  # e.g. v2b's figure-loss share beside v3's, as the issue's phenomena.json asks
        if not Path(other).exists():
            print(f"--compare {other}: no such phenomena report (made by actionbench world phenomena --out FILE)")
            return 2
        theirs = json.loads(Path(other).read_text()).get("figure_loss_share", {})
        rep["figure_loss_share"] = {**theirs, **rep["figure_loss_share"]}
    try:  # a path relative to where it was run from, so the report reads the same on every clone
        rep["fidelity_report"] = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        rep["fidelity_report"] = str(path)
    print(f"wrote {write(rep, args.out)}")
    return 0


def _fidelity(args) -> int:
    from .fidelity import measure_fidelity, write_report

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from ..models import WORLD_MODEL_OF

    rep = measure_fidelity(args.model or WORLD_MODEL_OF[args.world], n=args.n, steps=args.steps, guidance=args.guidance, seed=args.seed, world=args.world)
    if args.out:
        print(f"wrote {write_report(rep, args.out)}")
    else:
        print(json.dumps({k: rep[k] for k in ("named", "unnamed") if k in rep}, indent=1))
    return 0


def _model_grid(args) -> int:
    from ..models import WORLD_MODEL_OF, load_pipeline
    from .fidelity import model_grid, unnamed_grid

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pipe = load_pipeline(args.model or WORLD_MODEL_OF[args.world])
    model_grid(pipe, seed=args.seed, steps=args.steps, guidance=args.guidance, world=args.world).save(args.out)
    print(f"wrote {args.out}")
    if args.unnamed_out:
        unnamed_grid(pipe, seed=args.seed, steps=args.steps, guidance=args.guidance, world=args.world).save(args.unnamed_out)
        print(f"wrote {args.unnamed_out}")
    return 0


def _curve(args) -> int:
    from .train import plot_loss_curve

    print(f"wrote {plot_loss_curve(args.out, args.png)}")
    return 0


def add_world_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``world`` and its subcommands on an argparse ``subparsers`` object."""
    from ..models import WORLD_MODEL_DIR
    from .benchmark import BENCH_DIR
    from .judge import JUDGE_DIR

    world = subparsers.add_parser("world", help="ActionWorld: the small world, its text-to-image model and judge")
    sub = world.add_subparsers(dest="world_command", required=True)

    p = sub.add_parser("render-grid", help="a subjects x actions grid of renders")
    p.add_argument("--out", default="docs/img/world_render_grid.png")
    p.add_argument("--context", default=None, help="one context for all cells (default: cycle; v3: OUTFIT/SCENE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="the world's version (default v2b, the shipped model's)")
    p.set_defaults(func=_render_grid)

    p = sub.add_parser("bench", help="write World-ActionBench (ActionBench layout + action-different sets)")
    p.add_argument("--out", default=None, help=f"default {BENCH_DIR} (v2b) or its bench-v3 sibling (v3)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="the world's version (default v2b)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("bench-strip", help="a figure of one action's exemplars and exemplar 01's action-different set")
    p.add_argument("--action", default="handstand")
    p.add_argument("--out", default="docs/img/world_bench_handstand.png")
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="the world's version (default v2b)")
    p.add_argument("--bench", default=None, help="the bench folder (default: the world's)")
    p.set_defaults(func=_bench_strip)

    p = sub.add_parser("train", help="train the world model from scratch (resumable) and export it")
    p.add_argument("--steps", type=int, default=6000, help="UNet + text-encoder steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="scratch/world-train", help="checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--export", default=None,
                   help="where the fp16 pipeline goes (default: the world's model folder, actionbench/world/model or model-v3)")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vae-steps", type=int, default=None, help="autoencoder steps (default 1000)")
    p.add_argument("--vae-lr", type=float, default=None, help="autoencoder learning rate (default 2e-3)")
    p.add_argument("--init-vae", default=None,
                   help="fine-tune the autoencoder from this diffusers VAE folder (or a run's vae.safetensors) instead of random weights")
    p.add_argument("--init-unet", default=None, help="fine-tune UNet + text encoder from this pipeline folder instead of random weights")
    p.add_argument("--init-partial", action="store_true",
                   help="--init-unet: copy only tensors whose name and shape match (v2b -> v3: the 1,024-wide text side starts "
                        "fresh); what was copied goes to init.json in --out")
    p.add_argument("--decoder-steps", type=int, default=None, help="decoder-only refinement steps before the UNet stage (default 600)")
    p.add_argument("--n-data", type=int, default=None, help="renders encoded for the UNet stage (default 24000)")
    p.add_argument("--batch", type=int, default=None, help="UNet batch (default 32; a new run only: --resume keeps the saved config)")
    p.add_argument("--lr", type=float, default=None, help="UNet + text-encoder learning rate (default 8e-4)")
    p.add_argument("--ema", type=float, default=None, help="EMA decay (default 0.995)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--time-budget", type=float, default=None, help="end the UNet stage after this many seconds (with a checkpoint)")
    p.add_argument("--workers", type=int, default=1, help="processes that draw the dataset's renders (default 1)")
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES,
                   help="the world whose renders and captions it trains on (default v2b)")
    p.set_defaults(func=_train)

    p = sub.add_parser("train-controlnet", help="train the world model's OpenPose ControlNet on (exact skeleton, render) pairs (resumable) and export it")
    p.add_argument("--model", default=None, help="the frozen base pipeline (default: --world's model, world-v2b or world-v3)")
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="whose renders and skeletons (default v2b)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="scratch/world-controlnet", help="data cache, checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (reached --steps: export only)")
    p.add_argument("--export", default=None,
                   help="where the fp16 ControlNet goes (default: actionbench/world/controlnet, v3: controlnet-v3)")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-data", type=int, default=None, help="(skeleton, render) pairs made once (default 16000)")
    p.add_argument("--batch", type=int, default=None, help="batch (default 32; a new run only: --resume keeps the saved config)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-4)")
    p.add_argument("--ema", type=float, default=None, help="EMA decay (default 0.999; 0: none)")
    p.add_argument("--cond-channels", type=int, nargs="+", default=None, help="conditioning-embedding widths (default 16 32 64 for 64 px)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (with a checkpoint)")
    p.add_argument("--workers", type=int, default=1, help="processes that draw the renders and skeletons (default 1)")
    p.set_defaults(func=_train_controlnet)

    p = sub.add_parser("export", help="export the latest checkpoint of a training folder (EMA weights)")
    p.add_argument("--out", default="scratch/world-train")
    p.add_argument("--export", default=None, help="where it goes (default: the run's world's model folder)")
    p.set_defaults(func=_export)

    p = sub.add_parser("pack-checkpoint", help="pack a training folder's checkpoint small enough to commit (with the exported model)")
    p.add_argument("run_dir", help="the --out folder of `actionbench world train`")
    p.add_argument("dest", help="where the packed checkpoint goes (e.g. results/world-v2/checkpoint)")
    p.add_argument("--model-dir", default=None, help="the model that run exported (default: its world's model folder)")
    p.set_defaults(func=_pack_checkpoint)

    p = sub.add_parser("unpack-checkpoint", help="unpack a packed checkpoint into a new training folder, for --resume")
    p.add_argument("src", help="a packed checkpoint folder")
    p.add_argument("run_dir", help="a new training folder")
    p.add_argument("--model-dir", default=None, help="the exported model it was packed with (default: the one it names)")
    p.set_defaults(func=_unpack_checkpoint)

    p = sub.add_parser("refine-decoder", help="train an exported model's VAE decoder further (encoder frozen: the UNet stays valid)")
    p.add_argument("--model-dir", default=str(WORLD_MODEL_DIR))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-dir", default="scratch/decoder-refine", help="where decoder_log.jsonl goes")
    p.set_defaults(func=_refine_decoder)

    p = sub.add_parser("train-judge", help="train the (subject, action) judge on renders; v3: also scene and outfit heads")  # committed judge: --threads 1
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="the world it reads (default v2b; v3: four heads)")
    p.add_argument("--out", default=None, help=f"folder (default: {JUDGE_DIR} for v2b, judge-v3/ beside it for v3)")
    p.add_argument("--width", type=int, default=16, help="the network's base channel count")
    p.add_argument("--n-train", type=int, default=14000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=_train_judge)

    p = sub.add_parser("fidelity", help="judge the model's images from text prompts of named (and unnamed) actions")
    p.add_argument("--model", default=None, help="the world model (default: --world's, world-v2b or world-v3)")
    p.add_argument("--n", type=int, default=4, help="images per subject x action")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON report path")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES,
                   help="whose prompts and judge (default v2b; v3: also scene and clothing accuracy)")
    p.set_defaults(func=_fidelity)
    p = sub.add_parser("phenomena", help="the task's difficulties measured on a world model (token width, text naming, figure's loss share)")
    p.add_argument("--model", default=None, help="the world model (default: --world's, world-v2b or world-v3)")
    p.add_argument("--fidelity", help="the model's fidelity report (default: the shipped model's fidelity.json)")
    p.add_argument("--name", default=None, help="the world's label in the report (default: --world)")
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="whose renders the figure's loss share uses (default v2b)")
    p.add_argument("--compare", action="append", metavar="FILE",
                   help="another world's phenomena.json whose figure_loss_share goes beside this one (repeatable)")
    p.add_argument("--n", type=int, default=256, help="renders for the figure's loss share (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--out", required=True, help="JSON report path, e.g. results/world-v2b/phenomena.json")
    p.set_defaults(func=_phenomena)

    p = sub.add_parser("model-grid", help="subjects x named actions drawn by a model from text")
    p.add_argument("--model", default=None, help="the world model (default: --world's, world-v2b or world-v3)")
    p.add_argument("--out", default="docs/img/world_model_grid.png")
    p.add_argument("--unnamed-out", default=None, help="also a grid of action-free prompts ('a panda in a park')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--world", default="v2b", choices=WORLD_NAMES, help="whose prompts (default v2b)")
    p.set_defaults(func=_model_grid)

    p = sub.add_parser("curve", help="plot a training folder's loss curve")
    p.add_argument("--out", default="scratch/world-train")
    p.add_argument("--png", default="docs/img/world_training_curve.png")
    p.set_defaults(func=_curve)
    return world


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="actionbench")
    add_world_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
