"""Pluggable judges of generated images: ``pose`` (MediaPipe), ``clip`` (open_clip), ``world``."""

from .base import Item, Judge, JudgeContext, Verdict, available_judges, get_judge, make_judge, register_judge

__all__ = ["Item", "Judge", "JudgeContext", "Verdict", "available_judges", "get_judge", "make_judge", "register_judge"]
