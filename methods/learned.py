"""Learned-action files: safetensors tensors plus JSON metadata, never pickle.

A file holds what a method learned (identifier vectors, a LoRA, changed projections)
and, under the safetensors metadata key ``actionbench``, a JSON object: suite version,
method, config, the text that replaces ``{}`` in prompts (``fill``), the base model's
name and an architecture fingerprint (model family, SD or SDXL; token width, per text
encoder; cross-attention layer names in order; a checksum of frozen weights). Loading
checks the file against the pipeline and says what does not match: a file learned on
SD 2.1 is refused on SDXL naming the file, what it was learned for and what it was loaded
into. Files from before SDXL support have no family and are SD 1.x/2.x ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import actionbench
from actionbench.errors import ActionBenchError
from actionbench.fingerprint import FAMILIES, describe, model_fingerprint  # noqa: F401  (re-exported: methods.learned.model_fingerprint)

META_KEY = "actionbench"


@dataclass
class LearnedAction:
    method: str
    tensors: dict[str, torch.Tensor]
    fill: str  # what replaces "{}" in a prompt: "<A>", or the action phrase for `sd`
    config: dict[str, Any] = field(default_factory=dict)
    base_model: str = "unknown"
    fingerprint: dict[str, Any] = field(default_factory=dict)
    action: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: str = actionbench.__version__
    path: str | None = None  # the file it was loaded from (for messages; not saved)

    def metadata(self) -> dict[str, Any]:
        return {
            "suite_version": self.version,
            "method": self.method,
            "fill": self.fill,
            "config": self.config,
            "base_model": self.base_model,
            "fingerprint": self.fingerprint,
            "action": self.action,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file, then rename): a crash never leaves half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.tensors.items()}
        if not tensors:  # safetensors needs at least one tensor to carry metadata
            tensors = {"_empty": torch.zeros(0)}
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(self.metadata(), sort_keys=True)})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LearnedAction:
        path = Path(path)
        if not path.is_file():
            raise ActionBenchError(f"{path}: learned-action file not found")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = (f.metadata() or {}).get(META_KEY)
                tensors = {k: f.get_tensor(k) for k in f.keys() if k != "_empty"}
        except Exception as err:  # safetensors raises several types for a bad header
            raise ActionBenchError(f"{path}: not a safetensors file ({err})") from None
        if meta is None:
            raise ActionBenchError(f"{path}: safetensors file without actionbench metadata (was it made by `actionbench learn`?)")
        m = json.loads(meta)
        return cls(
            method=m["method"],
            tensors=tensors,
            fill=m["fill"],
            config=m.get("config", {}),
            base_model=m.get("base_model", "unknown"),
            fingerprint=m.get("fingerprint", {}),
            action=m.get("action"),
            extra=m.get("extra", {}),
            version=m.get("suite_version", "?"),
            path=str(path),
        )

    def check_compatible(self, pipe, where: str | None = None) -> None:
        """Raise a one-line error if this file was learned on another model."""
        if not self.fingerprint:
            return
        from actionbench.models import pipeline_name

        where = where or self.path or "learned-action file"
        here = model_fingerprint(pipe)
        hint = f"it was learned on '{self.base_model}': pass --model {self.base_model}"
        if self.fingerprint.get("family", "sd") != here["family"]:
            raise ActionBenchError(
                f"{where}: {self.method} file learned for {describe(self.fingerprint)}, '{self.base_model}', cannot be "
                f"used with {describe(here)}, '{pipeline_name(pipe)}' (identifiers and weights are sized and named "
                f"for the other architecture); {hint}"
            )
        if self.fingerprint["token_width"] != here["token_width"]:
            raise ActionBenchError(
                f"{where}: token width {self.fingerprint['token_width']} does not match this model's {here['token_width']}; {hint}"
            )
        if self.fingerprint["cross_attention_layers"] != here["cross_attention_layers"]:
            raise ActionBenchError(
                f"{where}: the model's cross-attention layers differ ({len(here['cross_attention_layers'])} here, "
                f"{len(self.fingerprint['cross_attention_layers'])} in the file); {hint}"
            )
        if self.fingerprint.get("architecture", here["architecture"]) != here["architecture"]:
            raise ActionBenchError(f"{where}: the model's architecture (UNet or text-encoder config) differs; {hint}")
        for a, b in zip(self.fingerprint["checksum"], here["checksum"]):
            if abs(a - b) > 1e-2 * max(abs(a), abs(b), 1e-6):
                raise ActionBenchError(f"{where}: the model's weights differ from those it was learned on; {hint}")
