"""Training checkpoints: trainable tensors, optimizer state, RNG state and step, in safetensors.

Written atomically (temp file + rename), so a kill at any moment leaves either the old
checkpoint or the new one. Resuming restores everything a step depends on, so a resumed
run ends bit-identical to an uninterrupted one on the CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from actionbench.errors import ActionBenchError


def save_checkpoint(path: Path, step: int, params: list[torch.Tensor], optimizer, generator: torch.Generator, config: dict, method: str):
    tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)}
    for i, p in enumerate(params):
        for k, v in optimizer.state.get(p, {}).items():
            tensors[f"optim.{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    tensors["rng"] = generator.get_state()
    meta = {"step": step, "config": config, "method": method}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"actionbench_checkpoint": json.dumps(meta, sort_keys=True)})
    os.replace(tmp, path)


def load_checkpoint(path: Path, params: list[torch.Tensor], optimizer, generator: torch.Generator, config: dict, method: str) -> int:
    """Restore state in place; return the number of steps already done."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["actionbench_checkpoint"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta["method"] != method or meta["config"] != config:
        changed = sorted(k for k in set(config) | set(meta["config"]) if config.get(k) != meta["config"].get(k))
        raise ActionBenchError(
            f"{path}: checkpoint was made with other settings ({meta['method']}; differs in: {', '.join(changed) or 'method'}); "
            f"rerun with the same settings or delete the checkpoint"
        )
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(tensors[f"param.{i}"].to(p.device, p.dtype))
    state = optimizer.state_dict()
    for i, p in enumerate(params):
        prefix = f"optim.{i}."
        entry = {k[len(prefix):]: v.to(p.device) for k, v in tensors.items() if k.startswith(prefix)}
        if entry:
            state["state"][i] = entry
    optimizer.load_state_dict(state)
    generator.set_state(tensors["rng"])
    return int(meta["step"])
