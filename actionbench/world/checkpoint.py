"""A world-model training run, packed small enough to commit and to carry, and resumed from it.

``actionbench world train`` keeps its full state in ``unet.ckpt.safetensors``: fp32
weights, EMA weights and both AdamW moments, 163 MB for the 10.2 M trainable parameters
of the shipped spec, beside a 131 MB cache of encoded renders. Neither fits a repository
whose working tree must stay under the 64 MiB the project's GPU machines accept (it is
about 50 MB), nor the 16 MiB a GPU run may send back per file. A *packed* checkpoint
keeps only what the exported model does not already hold:

* the weights are the exported pipeline's (``actionbench/world/model/``: the EMA weights
  in fp16), so a resumed run restarts from its EMA weights (weights := EMA, a common
  restart) and the exported model is part of the checkpoint: the pack records the
  sha256 of its weight files and unpacking refuses another model;
* AdamW's second moment ``exp_avg_sq`` (a 1000-step memory at beta2 0.999: the part that
  is slow to rebuild) in 8 bits on a log scale per tensor (:func:`quantize_log`, about 9%
  error on the step size 1/sqrt(v)), row-sparse where most rows are zero (the token
  embedding gets gradients only on the tokens of the world's captions);
* the first moment ``exp_avg`` (a 10-step memory at beta1 0.9) is not kept: it starts at
  zero and refills within a few dozen steps;
* the run's ``config.json`` and its step.

The encoded renders are not packed either: ``--resume`` remakes them from the config's
seed (:func:`actionbench.world.train.build_dataset`). About 7 MB for the shipped model.

    actionbench world pack-checkpoint scratch/world-v2b results/world-v2/checkpoint   # after the export
    actionbench world unpack-checkpoint results/world-v2/checkpoint scratch/world-v2c
    actionbench world train --resume --out scratch/world-v2c --steps 8000
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import ActionBenchError
from ..model_registry import sha256_file
from ..models import WORLD_MODEL_DIR, WORLD_MODEL_OF, WORLD_MODELS, build_pipeline, world_version
from .train import (
    CKPT_NAME,
    TrainConfig,
    _atomic_save,
    _load_unet_and_text_encoder,
    _spec,
    _trainable,
    _vae_weights,
    checkpoint_step,
)

PACKED = "optimizer.safetensors"
LEGACY_NAMES = {"world": "world-v2b"}  # what packs made before v3 wrote for the shipped (v2b) model
FORMAT = "actionworld-packed-v2"
WEIGHT_FILES = ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "vae/diffusion_pytorch_model.safetensors")
SPARSE_BELOW = 0.5  # a 2-D moment is stored row-sparse when fewer than this share of its rows are non-zero
LEVELS = 255  # codes 1..255 on the log scale; 0 is an exact zero


def quantize_log(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A non-negative tensor as uint8 codes on a log scale and its (low, high) log range:
    0 is an exact 0, codes 1..255 span [min, max] of the non-zero values' logs evenly."""
    v = v.float()
    nz = v > 0
    if not nz.any():
        return torch.zeros(v.shape, dtype=torch.uint8), torch.zeros(2)
    logs = torch.log(v[nz])
    lo, hi = logs.min(), logs.max()
    q = torch.zeros(v.shape, dtype=torch.uint8)
    q[nz] = (torch.round((logs - lo) / (hi - lo).clamp(min=1e-12) * (LEVELS - 1)) + 1).to(torch.uint8)
    return q, torch.stack([lo, hi])


def dequantize_log(q: torch.Tensor, log_range: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`quantize_log` (to the nearest code)."""
    lo, hi = log_range.float()
    v = torch.exp(lo + (q.float() - 1) / (LEVELS - 1) * (hi - lo))
    return torch.where(q > 0, v, torch.zeros_like(v))


def file_hashes(model_dir: str | Path) -> dict[str, str]:
    """sha256 of a pipeline folder's weight files (what a packed checkpoint's weights are)."""
    return {rel: sha256_file(Path(model_dir) / rel) for rel in WEIGHT_FILES}


def pack(run_dir: str | Path, dest: str | Path, model_dir: str | Path = WORLD_MODEL_DIR) -> Path:
    """Pack ``run_dir`` (a ``world train --out`` folder) into ``dest``; ``model_dir`` is the
    pipeline that run exported (its EMA weights), recorded by hash."""
    run_dir, dest, model_dir = Path(run_dir), Path(dest), Path(model_dir)
    src = run_dir / CKPT_NAME
    if not src.exists():
        raise ActionBenchError(f"{src}: no checkpoint to pack (give the --out folder of `actionbench world train`)")
    step = checkpoint_step(src)
    info = json.loads((model_dir / "actionworld.json").read_text()) if (model_dir / "actionworld.json").exists() else {}
    if info.get("step") != step:
        raise ActionBenchError(f"{model_dir} was exported at step {info.get('step')}, the checkpoint in {run_dir} is at step "
                               f"{step}: export it first (actionbench world export --out {run_dir} --export {model_dir})")
    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    names = [k for k, _ in _trainable(build_pipeline(_spec(cfg), seed=cfg.seed))]
    t = load_file(str(src))
    packed = {}
    for i, name in enumerate(names):
        v = t.get(f"opt.{i}.exp_avg_sq")
        if v is None:
            continue
        if v.dim() == 2 and v.shape[0] > 1:
            rows = v.abs().sum(dim=1).nonzero().flatten()
            if len(rows) < SPARSE_BELOW * v.shape[0]:
                packed[f"rows.{name}"] = rows.to(torch.int64)
                packed[f"shape.{name}"] = torch.tensor(v.shape, dtype=torch.int64)
                v = v[rows]
        packed[f"v.{name}"], packed[f"range.{name}"] = quantize_log(v)
    dest.mkdir(parents=True, exist_ok=True)
    version = world_version(str(model_dir))  # a shipped model by its version's name (world-v2b, world-v3), else the path
    where = WORLD_MODEL_OF[version] if version else str(model_dir)
    meta = {"format": FORMAT, "step": str(step), "model_dir": where, "weights_sha256": json.dumps(file_hashes(model_dir))}
    _atomic_save(packed, dest / PACKED, metadata=meta)
    shutil.copy2(run_dir / "config.json", dest / "config.json")
    return dest


def unpack(src: str | Path, run_dir: str | Path, model_dir: str | Path | None = None) -> Path:
    """A training folder from a packed checkpoint and the exported model it names (or
    ``model_dir``), ready for ``world train --resume --out run_dir``."""
    src, run_dir = Path(src), Path(run_dir)
    path = src / PACKED
    if not path.exists():
        raise ActionBenchError(f"{path}: not a packed checkpoint (made by `actionbench world pack-checkpoint`)")
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    if meta.get("format") != FORMAT:
        raise ActionBenchError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    named = LEGACY_NAMES.get(meta["model_dir"], meta["model_dir"])
    model_dir = Path(model_dir or WORLD_MODELS.get(named, named))
    if file_hashes(model_dir) != json.loads(meta["weights_sha256"]):
        raise ActionBenchError(f"{model_dir} is not the model this checkpoint was packed with (its weight files' sha256 differ): "
                               f"check out the commit that holds both, or give --model-dir")
    if (run_dir / CKPT_NAME).exists():
        raise ActionBenchError(f"{run_dir / CKPT_NAME} exists: unpack into a new folder")
    cfg = TrainConfig(**json.loads((src / "config.json").read_text()))
    pipe = build_pipeline(_spec(cfg), seed=cfg.seed)
    _load_unet_and_text_encoder(pipe, model_dir)
    packed = load_file(str(path))
    t = {}
    for i, (name, p) in enumerate(_trainable(pipe)):
        w = p.detach().float()
        t["model." + name], t["ema." + name] = w, w.clone()
        if f"v.{name}" not in packed:
            continue
        v = dequantize_log(packed[f"v.{name}"], packed[f"range.{name}"])
        if f"rows.{name}" in packed:
            full = torch.zeros(tuple(packed[f"shape.{name}"].tolist()))
            full[packed[f"rows.{name}"]] = v
            v = full
        t[f"opt.{i}.exp_avg"], t[f"opt.{i}.exp_avg_sq"] = torch.zeros_like(w), v
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_save(t, run_dir / CKPT_NAME, metadata={"step": meta["step"]})
    vae = _vae_weights(model_dir)  # the exported VAE, its refined decoder included: no stage of it runs again
    _atomic_save(vae, run_dir / "vae.safetensors")
    _atomic_save({k: v for k, v in vae.items() if k.startswith(("decoder.", "post_quant_conv."))}, run_dir / "vae_decoder.safetensors")
    shutil.copy2(src / "config.json", run_dir / "config.json")
    return run_dir


def packed_step(src: str | Path) -> int:
    """The training step a packed checkpoint was taken at."""
    return checkpoint_step(Path(src) / PACKED)


def describe(src: str | Path) -> dict:
    """Step and size of a packed checkpoint (for docs and the CLI)."""
    src = Path(src)
    return {"step": packed_step(src), "bytes": sum(p.stat().st_size for p in src.iterdir() if p.is_file())}
