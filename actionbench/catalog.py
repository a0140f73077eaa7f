"""The benchmark's actions and subjects, read from YAML data files (not code)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Subject:
    name: str  # prompt prefix, e.g. "A panda"
    category: str  # human / celebrity / animal

    def prompt(self, fill: str) -> str:
        """``"A panda"`` + ``"<A>"`` -> ``"A panda <A>"``."""
        return f"{self.name} {fill}"


@cache
def actions() -> dict[str, str]:
    """ActionBench action name -> the phrase the paper uses for it (8 actions)."""
    return dict(yaml.safe_load((DATA / "actions.yaml").read_text()))


@cache
def subjects() -> tuple[Subject, ...]:
    """The paper's 23 evaluation subjects, in its order."""
    data = yaml.safe_load((DATA / "subjects.yaml").read_text())
    return tuple(Subject(name, cat) for cat, names in data.items() for name in names)


def action_phrase(action: str) -> str | None:
    """The paper's phrase for an ActionBench action name, or None for an unknown one."""
    return actions().get(action)
