"""The judge interface and registry.

A judge looks at generated images and says, per image, whether the action and the
subject are right: ``True``, ``False`` or ``None`` ("cannot tell": no person found, a
subject it has no label for). ``None`` is never counted as wrong; the tables report how
many images each judge could judge.

Each judge class documents what it can and cannot see in ``sees`` and ``blind_to``
(``actionbench judge list`` prints them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from actionbench.errors import ActionBenchError


@dataclass(frozen=True)
class Item:
    """What an image was asked to show."""

    image_id: str
    action: str  # ActionBench action name ("handstand")
    subject: str  # subject prompt prefix ("A panda")


@dataclass
class Verdict:
    image_id: str
    judge: str
    action_ok: bool | None
    subject_ok: bool | None
    predicted_action: str | None = None
    predicted_subject: str | None = None
    score: float | None = None  # judge-specific confidence or distance
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JudgeContext:
    """What a judge may use besides the images: the benchmark's exemplars and subjects."""

    action_sets: dict = field(default_factory=dict)  # action name -> ActionSet
    subjects: tuple[str, ...] = ()
    device: str = "cpu"


class Judge:
    """Base class: subclasses set ``name``, ``sees``, ``blind_to`` and implement ``judge``."""

    name: str = ""
    sees: str = ""
    blind_to: str = ""

    def __init__(self, context: JudgeContext, **options):
        self.context = context
        self.options = options

    def judge(self, images: list, items: list[Item]) -> list[Verdict]:
        raise NotImplementedError


_JUDGES: dict[str, type[Judge]] = {}


def register_judge(cls: type[Judge]) -> type[Judge]:
    if cls.name in _JUDGES:
        raise ValueError(f"judge {cls.name!r} registered twice")
    _JUDGES[cls.name] = cls
    return cls


def available_judges() -> dict[str, type[Judge]]:
    return dict(sorted(_JUDGES.items()))


def get_judge(name: str) -> type[Judge]:
    judges = available_judges()
    if name not in judges:
        raise ActionBenchError(f"unknown judge {name!r}; available: {', '.join(judges)}")
    return judges[name]


def make_judge(name: str, context: JudgeContext, **options) -> Judge:
    return get_judge(name)(context, **options)
