"""Method configs: typed dataclasses, validated on creation, loadable from YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actionbench.errors import ActionBenchError


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, or a one-line error naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ActionBenchError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ActionBenchError(f"{path}: expected a mapping of setting: value")
    return data


@dataclass
class MethodConfig:
    """Settings every method has. Subclasses add their own fields and defaults."""

    steps: int = 3000
    lr: float = 2e-4
    batch_size: int = 1
    seed: int = 0
    resolution: int | None = None  # None: the model's native size
    checkpoint_every: int = 100
    weight_decay: float = 1e-2

    def __post_init__(self):
        if self.steps < 0:
            raise ActionBenchError(f"steps must be >= 0 (got {self.steps})")
        if self.lr <= 0:
            raise ActionBenchError(f"lr must be > 0 (got {self.lr})")
        if self.batch_size < 1:
            raise ActionBenchError(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.checkpoint_every < 1:
            raise ActionBenchError(f"checkpoint_every must be >= 1 (got {self.checkpoint_every})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config"):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ActionBenchError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ActionBenchError(f"{where}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides):
        """Load from YAML; keyword overrides (e.g. from CLI flags) win over the file."""
        path = Path(path)
        if not path.is_file():
            raise ActionBenchError(f"{path}: config file not found")
        data = read_yaml_mapping(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, where=str(path))

    def with_overrides(self, **overrides):
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(data)
