"""Run configs: which methods, actions, subjects, how many images, which judges (YAML)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actionbench.errors import ActionBenchError
from methods.config import read_yaml_mapping

CONFIGS = Path(__file__).with_name("configs")


@dataclass
class MethodEntry:
    """One column of the results: a method, its settings, and a label (ablations share a method)."""

    method: str
    label: str
    config: dict = field(default_factory=dict)
    learned: str | None = None  # reuse learned files: a pattern with {action}, e.g. "learned/adi/{action}.safetensors"


@dataclass
class RunConfig:
    name: str = "paper"
    model: str = "sd21-base"  # registry name (actionbench/data/models.yaml), hub id, local folder, "world", or "tiny"
    benchmark: str = "../shared/ActionBench"
    methods: list[MethodEntry] = field(default_factory=list)
    actions: list[str] | None = None  # None: every action of the benchmark
    subjects: list[str] | None = None  # None: the paper's 23
    images_per_pair: int = 4
    steps: int = 50  # DDIM steps
    guidance: float = 7.5
    seed: int = 0
    judges: list[str] | None = None  # None: ["world"] for the ActionWorld model, else ["pose"]
    judge_options: dict = field(default_factory=dict)  # judge name -> keyword options
    out: str | None = None  # run folder (default results/<name>)
    device: str | None = None
    dtype: str = "fp32"

    def __post_init__(self):
        from actionbench.models import world_version

        version = world_version(self.model)
        if self.judges is None:
            self.judges = ["world"] if version else ["pose"]
        if version and version != "v2b" and "world" in self.judges:  # the world judge of the model's world
            self.judge_options = {**self.judge_options, "world": {"version": version, **self.judge_options.get("world", {})}}
        if self.images_per_pair < 1:
            raise ActionBenchError(f"images_per_pair must be >= 1 (got {self.images_per_pair})")
        if self.steps < 1:
            raise ActionBenchError(f"steps must be >= 1 (got {self.steps})")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ActionBenchError(f"method labels must be unique (got {labels})")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results") / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run config") -> RunConfig:
        data = dict(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ActionBenchError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        data["methods"] = [_method_entry(m, where) for m in data.get("methods") or []]
        if not data["methods"]:
            raise ActionBenchError(f"{where}: 'methods' must list at least one method")
        try:
            return cls(**data)
        except TypeError as err:
            raise ActionBenchError(f"{where}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> RunConfig:
        path = Path(path)
        if not path.is_file() and (CONFIGS / f"{path}.yaml").is_file():
            path = CONFIGS / f"{path}.yaml"  # `--config paper` names a shipped config
        if not path.is_file():
            raise ActionBenchError(f"{path}: run config not found (shipped: {', '.join(p.stem for p in sorted(CONFIGS.glob('*.yaml')))})")
        data = read_yaml_mapping(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, where=str(path))


def _method_entry(item, where: str) -> MethodEntry:
    """``adi`` or ``{method: adi, label: adi-beta0.4, config: {beta: 0.4}, learned: ...}``."""
    if isinstance(item, str):
        return MethodEntry(method=item, label=item)
    if isinstance(item, dict) and "method" in item:
        unknown = set(item) - {"method", "label", "config", "learned"}
        if unknown:
            raise ActionBenchError(f"{where}: method entry has unknown key(s) {', '.join(sorted(unknown))}")
        return MethodEntry(item["method"], item.get("label", item["method"]), dict(item.get("config") or {}), item.get("learned"))
    raise ActionBenchError(f"{where}: a method is a name or {{method: NAME, label: ..., config: {{...}}}} (got {item!r})")
