"""The ActionWorld versions by name: each is a renderer module with one interface
(``SUBJECTS``, ``ACTIONS``, ``CONTEXTS``, ``caption``, ``render``, ``render_with_mask``,
``placement``, ``sample_triplets``, ...).

- ``v2b``: :mod:`.render`, the world of the shipped model and of the archived tables;
- ``v3``: :mod:`.render_v3`, textured outfits and scenes, no benchmark action named,
  exemplar sets that share context (issue #23; its model: ``--model world-v3``).
"""

from __future__ import annotations

from importlib import import_module

from ..errors import ActionBenchError
from .benchmark import BENCH_DIR

WORLDS = {"v2b": ".render", "v3": ".render_v3"}
BENCH_DIRS = {"v2b": BENCH_DIR, "v3": BENCH_DIR.with_name("bench-v3")}


class UnknownWorldError(ActionBenchError, ValueError):
    """A world name that is not one of :data:`WORLDS` (a ValueError too, as it was before)."""


def renderer(name: str):
    """The renderer module of world ``name`` (``v2b`` or ``v3``)."""
    if name not in WORLDS:
        raise UnknownWorldError(f"unknown ActionWorld version {name!r}: one of {', '.join(WORLDS)}")
    return import_module(WORLDS[name], __package__)
