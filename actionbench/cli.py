"""The ``actionbench`` command: a thin layer over the Python API.

Each subcommand is a parser plus a function making calls into ``actionbench``,
``methods`` or ``evaluate``. Errors in what the user gave (``ActionBenchError``) are
printed as one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ActionBenchError

# Subcommand groups living in other packages: module name -> function(subparsers).
PLUGINS = (
    ("actionbench.world.cli", "add_world_parser"),
    ("evaluate.demo", "add_parser"),
    ("evaluate.cli", "add_parsers"),  # run, judge, tables
    ("evaluate.speed", "add_parser"),  # speed
    ("annotate_app.cli", "add_parser"),  # annotate
)


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore", message=".*safety checker.*")
    warnings.filterwarnings("ignore", category=FutureWarning)


def _device(name: str | None) -> str:
    import torch

    if name:
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(name: str, device: str = "cpu"):
    """``auto``: bf16 for the frozen model on a GPU (the learned tensors stay fp32), fp32 on the CPU."""
    import torch

    if name == "auto":
        name = "bf16" if str(device).startswith("cuda") else "fp32"
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


# -- learn ---------------------------------------------------------------------------


def cmd_learn(args) -> None:
    import methods
    from actionbench.bench import load_action
    from actionbench.models import load_pipeline

    cls = methods.get_method(args.method)
    overrides = {
        "steps": args.steps, "lr": args.lr, "seed": args.seed, "beta": args.beta,
        "action_different_steps": args.action_different_steps, "mask": args.mask,
    }
    if args.single_token:
        overrides["layerwise"] = False
    if args.lora:
        overrides["lora"] = True
    if args.no_prior:
        overrides["prior_preservation"] = False
    if args.controlnet:
        overrides["controlnet"] = args.controlnet
    fields = set(cls.Config.__dataclass_fields__)
    for key in list(overrides):
        if overrides[key] is not None and key not in fields:
            flag = {"layerwise": "single-token", "prior_preservation": "no-prior"}.get(key, key.replace("_", "-"))
            raise ActionBenchError(f"--{flag} does not apply to method {args.method!r}")
    overrides = {k: v for k, v in overrides.items() if k in fields}
    config = cls.Config.from_yaml(args.config, **overrides) if args.config else cls.Config().with_overrides(**overrides)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ActionBenchError(f"--out {out}: learned actions are saved as .safetensors files")
    if out.exists() and not (args.resume or args.force):
        raise ActionBenchError(f"{out} exists; pass --force to overwrite it (or --resume to continue a run)")
    action_set = load_action(args.action_dir, template=args.template, phrase=args.phrase, action_different_dir=args.action_different)
    device = _device(args.device)
    pipe = load_pipeline(args.model, device, _dtype(args.dtype, device))
    methods.learn(pipe, action_set, args.method, config, out=out, work_dir=args.work_dir, resume=args.resume)
    print(f"saved {out} ({args.method}, {len(action_set)} exemplars of '{action_set.name}')")


def add_learn(sub) -> None:
    p = sub.add_parser("learn", help="learn an action from its exemplars", description="Learn an action identifier from a folder of exemplars.")
    p.add_argument("action_dir", help="folder of exemplar images (ActionBench layout: NN.jpg + text.json)")
    p.add_argument("--out", required=True, help="learned-action file to write (.safetensors)")
    p.add_argument("--method", default="adi", help="method name (see `actionbench methods`; default adi)")
    p.add_argument("--model", default="sd21-base",
                   help="registry name (sd21-base, sd15: `actionbench models`), hub id, local diffusers folder, or 'world' (default sd21-base)")
    p.add_argument("--steps", type=int, help="training steps (default: the method's; ADI 3000)")
    p.add_argument("--lr", type=float, help="learning rate (default: the method's; ADI 2e-4)")
    p.add_argument("--beta", type=float, help="ADI mask fraction in (0, 1) (default 0.6)")
    p.add_argument("--mask", help="ADI mask strategy / ablation (default adi)")
    p.add_argument("--single-token", action="store_true", help="ADI ablation: one token, no layer-wise expansion")
    p.add_argument("--lora", action="store_true", help="DreamBooth: a LoRA on the UNet (peft) instead of full fine-tuning")
    p.add_argument("--no-prior", action="store_true", help="DreamBooth / Custom Diffusion: no prior preservation (no class images)")
    p.add_argument("--controlnet", help="ControlNet: hub id, local folder or world (default: the OpenPose ControlNet for the model: SD 1.x / 2.x, or world for --model world)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--config", help="YAML file of method settings (flags override it)")
    p.add_argument("--template", help="prompt template with '{}' for every image of a plain folder")
    p.add_argument("--phrase", help="the action as text (default: the paper's phrase for known actions)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--action-different", help="folder with DIR/NN/*.png: exemplar NN's person doing other actions")
    g.add_argument("--action-different-steps", type=int, help="LoRA steps per exemplar to make action-different images (default 200)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --out")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--work-dir", help="cache folder (default: .actionbench-cache beside --out)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="dtype of the frozen model (default auto: bf16 on a GPU, fp32 on the CPU)")
    p.set_defaults(func=cmd_learn)


# -- generate ------------------------------------------------------------------------


def cmd_generate(args) -> None:
    import methods
    from actionbench.models import load_pipeline

    methods.fill_prompt(args.prompt, "x")  # check the prompt before loading anything
    learned = methods.LearnedAction.load(args.learned)
    model = args.model or learned.base_model
    device = _device(args.device)
    pipe = load_pipeline(model, device, _dtype(args.dtype, device))
    learned.check_compatible(pipe, where=args.learned)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    images = []
    for i in tqdm(range(args.n), desc="generate", unit="image"):
        images += methods.generate(pipe, learned, args.prompt, n=1, seed=args.seed + i, steps=args.steps, guidance=args.guidance)
    stem = args.prompt.replace("{}", learned.action or "action").strip().replace(" ", "_").lower()[:60]
    for i, im in enumerate(images):
        im.save(out / f"{stem}_{args.seed + i:04d}.png")
    methods.contact_sheet(images).save(out / f"{stem}_grid.png")
    print(f"wrote {len(images)} images and {stem}_grid.png to {out}")


def add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate images with a learned action", description="Generate images of a prompt with a learned action.")
    p.add_argument("learned", help="learned-action file (.safetensors)")
    p.add_argument("prompt", help="prompt with '{}' where the action goes, e.g. \"A panda {}\"")
    p.add_argument("--out", required=True, help="output folder for PNGs and a contact sheet")
    p.add_argument("--n", type=int, default=4, help="number of images (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance (default 7.5)")
    p.add_argument("--model", help="registry name, hub id, local folder or 'world' (default: the file's base model)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="dtype of the model (default auto: bf16 on a GPU, fp32 on the CPU)")
    p.set_defaults(func=cmd_generate)


# -- methods -------------------------------------------------------------------------


def cmd_methods(args) -> None:
    import methods

    for name, cls in methods.available().items():
        c = cls.Config()
        print(f"{name:20s} {cls.summary}  [steps {c.steps}, lr {c.lr}, batch {c.batch_size}]")


def add_methods(sub) -> None:
    p = sub.add_parser("methods", help="list the available methods")
    p.set_defaults(func=cmd_methods)


# -- models --------------------------------------------------------------------------


def cmd_models(args) -> None:
    from actionbench.model_registry import describe, load_registry
    from actionbench.models import DEFAULT_MODEL

    for entry in load_registry().values():
        print(describe(entry, default=entry.name == DEFAULT_MODEL))


def cmd_models_verify(args) -> None:
    from actionbench.model_registry import check_folder

    for c in check_folder(args.folder, args.name):
        print(f"{c.status:9s} {c.path}")
    print(f"{args.folder}: every file with a published sha256 that is there matches {args.name}")


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list the known base models (what --model NAME resolves to)",
                       description="The registry of base models (actionbench/data/models.yaml): hub ids in the order they are "
                                   "tried, architecture, and the sha256 of their weight files.")
    p.set_defaults(func=cmd_models)
    msub = p.add_subparsers(dest="models_command")
    v = msub.add_parser("verify", help="check a downloaded model folder's weight files against the registry's sha256")
    v.add_argument("folder", help="diffusers folder (e.g. from `hf download HUB_ID --local-dir DIR`)")
    v.add_argument("--as", dest="name", required=True, help="registry name the folder should be (sd21-base, sd15, sdxl)")
    v.set_defaults(func=cmd_models_verify)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="actionbench", description="Benchmark suite for action-customized text-to-image generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_learn(sub)
    add_generate(sub)
    add_methods(sub)
    add_models(sub)
    for module, func in PLUGINS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency inside the plugin
                raise
            continue
        getattr(mod, func)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except ActionBenchError as err:
        print(f"actionbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actionbench: interrupted (a checkpoint, if any, is kept; rerun with --resume)", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
