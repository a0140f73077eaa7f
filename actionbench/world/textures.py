"""Procedural textures for ActionWorld v3: clothing patterns and scene surfaces.

Every function returns an ``(S, S, 3)`` uint8 array (image coordinates, y down) and is a
pure function of its arguments (randomness only through the ``rng`` passed in). Periods
are in supersampled pixels: the renderer draws at ``4 x 64`` px, so a period of 12 is 3 px
in the 64 px image: fine enough to cost the autoencoder and the denoiser, coarse enough
for a small judge to read.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

Colour = tuple[int, int, int]


def _grid(S: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:S, 0:S]
    return x.astype(np.float32), y.astype(np.float32)


def _pick(mask: np.ndarray, c_on: Colour, c_off: Colour) -> np.ndarray:
    out = np.empty(mask.shape + (3,), np.uint8)
    out[mask] = c_on
    out[~mask] = c_off
    return out


def plain(S: int, colour: Colour) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (S, S, 3)).copy()


def stripes(S: int, on: Colour, off: Colour, period: float, phase: float = 0.0, vertical: bool = False) -> np.ndarray:
    """Bands of ``on`` (half the period) and ``off``; horizontal unless ``vertical``."""
    x, y = _grid(S)
    t = (x if vertical else y) + phase
    return _pick((t % period) < period / 2, on, off)


def checks(S: int, on: Colour, off: Colour, period: float, phase: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A checkerboard: ``on`` where exactly one of the two coordinates is in its first half-period."""
    x, y = _grid(S)
    a = ((x + phase[0]) % period) < period / 2
    b = ((y + phase[1]) % period) < period / 2
    return _pick(a ^ b, on, off)


def dots(S: int, dot: Colour, ground: Colour, period: float, radius: float, phase: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Round dots of ``radius`` on a square lattice of ``period``, every other row offset by half."""
    x, y = _grid(S)
    row = np.floor((y + phase[1]) / period)
    xs = (x + phase[0] + (row % 2) * period / 2) % period - period / 2
    ys = (y + phase[1]) % period - period / 2
    return _pick(xs**2 + ys**2 <= radius**2, dot, ground)


def zigzag(S: int, on: Colour, off: Colour, period: float, amplitude: float, phase: float = 0.0) -> np.ndarray:
    """Horizontal zigzag bands (a triangle wave of ``amplitude`` along x, wavelength 2 periods)."""
    x, y = _grid(S)
    tri = np.abs(((x + phase) / period) % 2 - 1) * amplitude
    return _pick(((y + tri) % period) < period / 2, on, off)


def value_noise(S: int, rng: np.random.Generator, cell: int) -> np.ndarray:
    """Smooth noise in [0, 1] with features about ``cell`` pixels across (bicubic-upsampled random grid)."""
    n = max(2, S // cell + 2)
    small = Image.fromarray((rng.random((n, n)) * 255).astype(np.uint8))
    big = np.asarray(small.resize((n * cell, n * cell), Image.Resampling.BICUBIC), np.float32) / 255.0
    ox, oy = rng.integers(0, cell, 2)
    return big[oy : oy + S, ox : ox + S]


def camo(S: int, c1: Colour, c2: Colour, rng: np.random.Generator, cell: int = 20) -> np.ndarray:
    """Camouflage: two noise layers thresholded into blobs of ``c1``, ``c2`` and a dark third colour."""
    a = value_noise(S, rng, cell) > 0.5
    b = value_noise(S, rng, cell) > 0.62
    out = _pick(a, c1, c2)
    out[b] = (45, 50, 30)
    return out


def noisy(S: int, base: Colour, amplitude: float, rng: np.random.Generator, cell: int, grain: float = 0.0) -> np.ndarray:
    """``base`` shaded by smooth noise (grass, sand, snow): +-``amplitude`` of brightness, plus
    ``grain``: +- that much of pixel-sized noise (4 supersampled px: one pixel of the image)."""
    n = value_noise(S, rng, cell) * 2 - 1
    fine = value_noise(S, rng, max(2, cell // 3)) * 2 - 1
    shade = 1 + amplitude * (0.6 * n + 0.4 * fine)
    if grain:
        shade = shade + grain * (value_noise(S, rng, 4) * 2 - 1)
    return np.clip(np.array(base, np.float32)[None, None, :] * shade[..., None], 0, 255).astype(np.uint8)


def pattern(name: str, S: int, colours: list[Colour], rng: np.random.Generator) -> np.ndarray:
    """An outfit's texture by pattern name (``world-v3.yaml``), with a random phase per character."""
    on, off = (tuple(c) for c in colours)
    ph = rng.uniform(0, 64, 2)
    if name == "stripes":
        return stripes(S, on, off, 14.0, ph[0])
    if name == "checks":
        return checks(S, on, off, 16.0, (ph[0], ph[1]))
    if name == "dots":
        return dots(S, on, off, 14.0, 3.6, (ph[0], ph[1]))
    if name == "zigzag":
        return zigzag(S, on, off, 14.0, 7.0, ph[0])
    if name == "camo":
        return camo(S, on, off, rng)
    if name == "plain":
        return plain(S, on)
    raise ValueError(f"unknown outfit pattern {name!r} (world-v3.yaml): use stripes, checks, dots, zigzag, camo or plain")
