"""A world-model training run packed small enough to commit, and unpacked to resume it.

``actionbench world train`` keeps its full state in ``unet.ckpt.safetensors`` (fp32 weights,
EMA weights and AdamW moments: 163 MB for the 10.2 M trainable parameters of the shipped
spec) beside a cache of encoded renders (131 MB). Neither fits a repository. A *packed*
checkpoint keeps what ``--resume`` needs, in half precision:

* weights and EMA weights in fp16;
* AdamW's two moments in bf16 (their range matters more than their last digits), stored
  row-sparse where most rows are zero: the text encoder's token embedding gets gradients
  only on the few hundred tokens of the world's captions, so its moments are zero on the
  other 49,000 rows (``NAME.rows`` holds the kept rows' indices, ``NAME.shape`` the full shape);
* the run's ``config.json`` and its autoencoder (``vae.safetensors``, and
  ``vae_decoder.safetensors`` if the run refined the decoder).

The encoded renders are not packed: ``--resume`` remakes them from the config's seed (the
same renders, chunk by chunk; :func:`actionbench.world.train.build_dataset`). A resumed
unpacked run is the same run up to the half-precision rounding of its state (tested).

    actionbench world pack-checkpoint scratch/world-v2b results/world-v2/checkpoint
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
from .train import _atomic_save

CKPT = "unet.ckpt.safetensors"
PACKED = "unet.ckpt.packed.safetensors"
FORMAT = "actionworld-packed-v1"
SIDE_FILES = ("config.json", "vae.safetensors", "vae_decoder.safetensors")
SPARSE_BELOW = 0.5  # store a 2-D moment row-sparse when fewer than this share of its rows are non-zero


def pack_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A training checkpoint's tensors in half precision: ``model.*`` and ``ema.*`` fp16,
    ``opt.*`` bf16 (row-sparse with a ``.rows`` index where most rows are zero)."""
    packed = {}
    for k, v in state.items():
        if k.startswith("opt."):
            if v.dim() == 2 and v.shape[0] > 1:
                rows = v.abs().sum(dim=1).nonzero().flatten()
                if len(rows) < SPARSE_BELOW * v.shape[0]:
                    packed[k + ".rows"] = rows.to(torch.int64)
                    packed[k + ".shape"] = torch.tensor(v.shape, dtype=torch.int64)
                    v = v[rows]
            packed[k] = v.to(torch.bfloat16).contiguous()
        else:
            packed[k] = v.to(torch.float16).contiguous()
    return packed


def unpack_tensors(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 tensors back from :func:`pack_tensors` (row-sparse moments filled with zeros)."""
    out = {}
    for k, v in packed.items():
        if k.endswith((".rows", ".shape")):
            continue
        v = v.float()
        if k + ".rows" in packed:
            full = torch.zeros(tuple(packed[k + ".shape"].tolist()))
            full[packed[k + ".rows"]] = v
            v = full
        out[k] = v
    return out


def pack(run_dir: str | Path, dest: str | Path) -> Path:
    """Pack ``run_dir`` (a ``world train --out`` folder with a checkpoint) into ``dest``."""
    run_dir, dest = Path(run_dir), Path(dest)
    src = run_dir / CKPT
    if not src.exists():
        raise ActionBenchError(f"{src}: no checkpoint to pack (give the --out folder of `actionbench world train`)")
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    dest.mkdir(parents=True, exist_ok=True)
    _atomic_save(pack_tensors(load_file(str(src))), dest / PACKED, metadata={**meta, "format": FORMAT})
    for name in SIDE_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    return dest


def unpack(src: str | Path, run_dir: str | Path) -> Path:
    """Unpack a packed checkpoint into ``run_dir``, ready for ``world train --resume --out run_dir``."""
    src, run_dir = Path(src), Path(run_dir)
    path = src / PACKED
    if not path.exists():
        raise ActionBenchError(f"{path}: not a packed checkpoint (made by `actionbench world pack-checkpoint`)")
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    if meta.get("format") != FORMAT:
        raise ActionBenchError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / CKPT).exists():
        raise ActionBenchError(f"{run_dir / CKPT} exists: unpack into a new folder")
    meta.pop("format")
    _atomic_save(unpack_tensors(load_file(str(path))), run_dir / CKPT, metadata=meta)
    for name in SIDE_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, run_dir / name)
    return run_dir


def packed_step(src: str | Path) -> int:
    """The training step a packed checkpoint was taken at."""
    with safe_open(str(Path(src) / PACKED), "pt") as f:
        return int(f.metadata()["step"])


def describe(src: str | Path) -> dict:
    """Step, size and config summary of a packed checkpoint (for docs and the CLI)."""
    src = Path(src)
    cfg = json.loads((src / "config.json").read_text()) if (src / "config.json").exists() else {}
    size = sum(p.stat().st_size for p in src.iterdir() if p.is_file())
    return {"step": packed_step(src), "bytes": size, "batch": cfg.get("batch"), "lr": cfg.get("lr"), "seed": cfg.get("seed")}
