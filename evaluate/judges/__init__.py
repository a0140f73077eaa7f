"""Pluggable judges of generated images: ``pose`` (MediaPipe), ``clip`` (open_clip), ``world``,
``vqa`` (a vision-language model asked yes/no questions).

Importing this package registers every judge (each plugin module registers its own); the
plugins import :mod:`.base`, never this package, so there is no import circle.
"""

from . import clip, pose, vqa, world  # noqa: F401  (each module registers its judge)
from .base import Item, Judge, JudgeContext, Verdict, available_judges, get_judge, make_judge, register_judge

__all__ = ["Item", "Judge", "JudgeContext", "Verdict", "available_judges", "get_judge", "make_judge", "register_judge"]
