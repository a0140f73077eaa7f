"""The one training loop every method shares. It never branches on a method's name.

Per step: ``method.training_step`` puts this step's gradients into the trainable
tensors' ``.grad`` (ADI's already masked), then AdamW steps. All randomness comes from
one seeded CPU generator, saved in checkpoints, so runs are reproducible and resumable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from actionbench.bench import ActionSet

from .checkpoint import load_checkpoint, save_checkpoint
from .config import MethodConfig
from .learned import LearnedAction
from .registry import get_method
from .weights import restore


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt.safetensors")


def learn(
    pipe,
    action_set: ActionSet,
    method: str = "adi",
    config: MethodConfig | None = None,
    out: str | Path | None = None,
    work_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> LearnedAction:
    """Learn ``action_set`` with ``method`` on ``pipe``; save to ``out`` (if given) and return it.

    With ``resume``, training continues from ``out``'s checkpoint when one exists.
    ``stop_after`` ends the run after that many steps in total, leaving a checkpoint and no
    output file (as a kill would; the tests use it).
    """
    cls = get_method(method)
    config = config if config is not None else cls.Config()
    out = Path(out) if out is not None else None
    work_dir = Path(work_dir) if work_dir is not None else (out.parent if out else Path.cwd()) / ".actionbench-cache"
    restore(pipe)  # learning starts from the base model, whatever a generate() call applied before
    m = cls(pipe, action_set, config)
    m.setup(work_dir)
    params = m.parameters()
    if params and config.steps > 0:
        _optimize(m, params, config, out, resume, progress, stop_after)
        if stop_after is not None and stop_after < config.steps:
            return m.export()
    learned = m.export()
    if out is not None:
        learned.save(out)
        ckpt = checkpoint_path(out)
        if ckpt.exists():
            ckpt.unlink()
    return learned


def _optimize(m, params, config: MethodConfig, out: Path | None, resume: bool, progress: bool, stop_after: int | None):
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    ckpt = checkpoint_path(out) if out is not None else None
    start = 0
    if resume and ckpt is not None and ckpt.exists():
        start = load_checkpoint(ckpt, params, optimizer, generator, config.to_dict(), m.name)
    end = config.steps if stop_after is None else min(stop_after, config.steps)
    log = out.with_name(out.name + ".log.jsonl") if out is not None else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(start, end), initial=start, total=config.steps, desc=f"learn {m.name}", disable=not progress)
    t0 = time.perf_counter()
    for step in bar:
        logs = m.training_step(generator)
        m.optimizer_step(optimizer)
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
        if log is not None:
            with log.open("a") as f:
                f.write(json.dumps({"step": step + 1, "time_s": round(time.perf_counter() - t0, 3), **logs}) + "\n")
        if ckpt is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == end):
            save_checkpoint(ckpt, step + 1, params, optimizer, generator, config.to_dict(), m.name)
