"""The method registry: name -> method class. Each method module registers itself.

Nothing here imports the method modules: importing this module imports the ``methods``
package first, and the package imports every method module (``methods/__init__.py``), so
the registry is full before anyone can ask it.
"""

from __future__ import annotations

from actionbench.errors import ActionBenchError

_METHODS: dict[str, type] = {}


def register(cls):
    """Class decorator: make a method available by its ``name``."""
    if cls.name in _METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    _METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type:
    if name not in _METHODS:
        raise ActionBenchError(f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def available() -> dict[str, type]:
    return dict(sorted(_METHODS.items()))
