"""ActionWorld v3 renderer (issue #23): v2b's characters and poses in textured outfits and scenes.

The same interface as :mod:`actionbench.world.render` (``SUBJECTS``, ``ACTIONS``,
``CONTEXTS``, ``caption``, ``render``, ``render_with_mask``, ``placement``,
``sample_triplets``, ...), so every tool that takes a world module takes this one. What
changes (``world-v3.yaml``):

- a *context* is an ``"outfit/scene"`` pair (``"striped/park"``), its phrase the outfit's
  then the scene's ("in a red striped shirt in a park");
- no caption names a World-ActionBench action (all 8 are unnamed);
- scenes are covered in textures (grass, bricks, planks, book spines, ...) and every
  character wears a textured shirt (animals a vest), so appearance carries most pixels;
- each action's exemplars share a dominant scene and outfit (``exemplar_specs``), the
  shares written in the bench's metadata, so context leakage can be measured exactly.

The character (colours, size, hair), pose jitter and placement come from v2b's code with
the same seeds; only the shirt is repainted with the outfit's texture (a sentinel colour
is drawn, then replaced pixel for pixel: PIL draws without anti-aliasing at 4x).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from ..errors import ActionBenchError
from . import render as R
from . import textures as T


class ContextError(ActionBenchError, ValueError):
    """A v3 context that is not OUTFIT/SCENE (a ValueError too, as v2b's renderer raises)."""

WORLD_YAML = Path(__file__).with_name("world-v3.yaml")
SUPERSAMPLE = R.SUPERSAMPLE
SENTINEL = (255, 0, 254)  # the shirt's placeholder colour; no other drawn part uses it
N_EXEMPLARS = 10
BASE_SEED = 7000  # exemplar seeds: 7000 + 100 * (action index) + exemplar index
NAME = "v3"


@lru_cache(maxsize=1)
def world_config() -> dict:
    """The parsed ``world-v3.yaml``."""
    return yaml.safe_load(WORLD_YAML.read_text())


_C = world_config()
SUBJECTS: list[str] = list(_C["subjects"])
ACTIONS: list[str] = list(_C["actions"])
SCENES: list[str] = list(_C["scenes"])
OUTFITS: list[str] = list(_C["outfits"])
CONTEXTS: list[str] = [f"{o}/{s}" for o in OUTFITS for s in SCENES]
HUMANS: list[str] = [s for s in SUBJECTS if _C["subjects"][s]["human"]]
ANIMALS: list[str] = [s for s in SUBJECTS if not _C["subjects"][s]["human"]]
UNNAMED: list[str] = [a for a in ACTIONS if _C["actions"][a]["unnamed"]]
NAMED: list[str] = [a for a in ACTIONS if not _C["actions"][a]["unnamed"]]
ACTIONBENCH: dict[str, str] = {v["actionbench"]: a for a, v in _C["actions"].items() if v["actionbench"]}
skeleton = R.skeleton
Placement = R.Placement


def split_context(context: str) -> tuple[str, str]:
    """``"striped/park"`` -> ``("striped", "park")``; a clear error for anything else."""
    outfit, sep, scene = context.partition("/")
    if not sep or outfit not in OUTFITS or scene not in SCENES:
        raise ContextError(f"unknown v3 context {context!r}: expected OUTFIT/SCENE with OUTFIT in {OUTFITS} "
                         f"and SCENE in {SCENES}, e.g. 'striped/park'")
    return outfit, scene


def subject_phrase(subject: str) -> str:
    return _C["subjects"][subject]["phrase"]


def action_phrase(action: str) -> str:
    return _C["actions"][action]["phrase"]


def outfit_phrase(outfit: str) -> str:
    return _C["outfits"][outfit]["phrase"]


def scene_phrase(scene: str) -> str:
    return _C["scenes"][scene]


def context_phrase(context: str) -> str:
    outfit, scene = split_context(context)
    return f"{outfit_phrase(outfit)} {scene_phrase(scene)}"


def caption(subject: str, action: str, context: str, name_action: bool | None = None) -> str:
    """"a panda waves in a red striped shirt in a park"; unnamed (benchmark) actions leave the phrase out."""
    if name_action is None:
        name_action = action not in UNNAMED
    parts = [subject_phrase(subject)] + ([action_phrase(action)] if name_action else []) + [context_phrase(context)]
    return " ".join(parts)


# --------------------------------------------------------------------------- scenes
def _sky(S: int, hy: int, top, bottom) -> np.ndarray:
    t = np.linspace(0, 1, hy, dtype=np.float32)[:, None, None]
    return (np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t).repeat(S, 1).astype(np.uint8)


def _bricks(S: int, h0: int, h1: int, rng: np.random.Generator, base=(165, 75, 55), bh=10, bw=22) -> np.ndarray:
    """Rows ``h0:h1`` of a brick wall: bricks of jittered colour, light mortar lines, offset rows."""
    out = np.empty((h1 - h0, S, 3), np.uint8)
    out[:] = (200, 190, 175)
    ox = int(rng.integers(bw))
    for r, y in enumerate(range(0, h1 - h0, bh)):
        shift = ox + (bw // 2 if r % 2 else 0)
        for x in range(-shift, S, bw):
            c = np.clip(np.array(base) * rng.uniform(0.8, 1.15), 0, 255)
            out[y + 1 : y + bh - 1, max(0, x + 1) : max(0, x + bw - 1)] = c
    return out


def draw_scene(scene: str, S: int, rng: np.random.Generator) -> tuple[Image.Image, float]:
    """A textured scene of side ``S``; returns it and the horizon (fraction of ``S``)."""
    horizon = float(rng.uniform(0.56, 0.66))
    hy = int(horizon * S)
    arr = np.zeros((S, S, 3), np.uint8)
    g = S - hy
    side = float(rng.choice([0.12, 0.88])) * S
    shapes: list = []  # (kind, box, fill) drawn with PIL after the arrays
    def dots_of(n, y0, y1, r0, r1, colours):
        for _ in range(n):
            x, y, r = rng.uniform(0, S), rng.uniform(y0, y1), rng.uniform(r0, r1) * S
            shapes.append(("ellipse", [x - r, y - r, x + r, y + r], colours[int(rng.integers(len(colours)))]))

    if scene == "park":
        arr[:hy] = _sky(S, hy, (110, 175, 240), (185, 222, 250))
        band = int(0.12 * S)  # distant bushes along the horizon
        arr[hy - band : hy] = T.noisy(S, (50, 115, 50), 0.5, rng, 6, grain=0.5)[:band]
        arr[hy:] = T.noisy(S, (70, 150, 60), 0.4, rng, 8, grain=0.5)[:g]
        for _ in range(4):
            x, y = rng.uniform(0, S), rng.uniform(0.05, 0.3) * S
            shapes.append(("ellipse", [x - 0.12 * S, y - 0.04 * S, x + 0.12 * S, y + 0.04 * S], (250, 250, 252)))
        for _ in range(90):  # blades of grass
            x, y = rng.uniform(0, S), rng.uniform(hy, S)
            shapes.append(("rect", [x, y - 0.03 * S, x + 0.012 * S, y], (30, 95, 30) if rng.random() < 0.5 else (130, 200, 90)))
        h = float(rng.uniform(0.3, 0.4)) * S
        shapes.append(("rect", [side - 0.03 * S, hy - h * 0.5, side + 0.03 * S, hy + 0.01 * S], (110, 75, 40)))
        shapes.append(("leaves", [side - 0.15 * S, hy - h, side + 0.15 * S, hy - h * 0.35], (40, 120, 45)))
    elif scene == "beach":
        sea = int(hy - 0.18 * S)
        arr[:sea] = _sky(S, sea, (80, 165, 235), (195, 232, 250))
        arr[sea:hy] = T.zigzag(S, (40, 120, 190), (90, 170, 225), 8.0, 5.0, float(rng.uniform(0, 16)))[: hy - sea]
        arr[hy:] = T.noisy(S, (232, 210, 150), 0.2, rng, 6, grain=0.35)[:g]
        for _ in range(5):  # streaks of cloud
            x, y = rng.uniform(0, S), rng.uniform(0.04, 0.9) * sea
            shapes.append(("rect", [x - 0.15 * S, y, x + 0.15 * S, y + 0.02 * S], (245, 248, 252)))
        dots_of(25, sea, hy, 0.004, 0.01, [(250, 252, 255)])  # foam
        dots_of(45, hy, S, 0.005, 0.012, [(250, 245, 230), (170, 140, 100), (205, 120, 90)])  # shells, pebbles
        shapes.append(("ellipse", [side - 0.08 * S, 0.06 * S, side + 0.08 * S, 0.22 * S], (255, 225, 80)))
    elif scene == "city":
        arr[:hy] = _bricks(S, 0, hy, rng)
        pave = T.checks(S, (120, 120, 125), (150, 150, 155), 24.0, tuple(rng.uniform(0, 24, 2)))
        grain = T.noisy(S, (255, 255, 255), 0.0, rng, 8, grain=0.25).astype(np.float32) / 255.0
        arr[hy:] = (pave * grain).astype(np.uint8)[:g]
        for _ in range(2):
            x, y = rng.uniform(0.05, 0.8) * S, rng.uniform(0.08, 0.3) * S
            shapes.append(("rect", [x, y, x + 0.14 * S, y + 0.16 * S], (60, 80, 110)))
    elif scene == "night":
        arr[:hy] = _sky(S, hy, (8, 12, 40), (30, 40, 85))
        arr[hy:] = T.noisy(S, (25, 45, 40), 0.4, rng, 8, grain=0.5)[:g]
        dots_of(90, 0, hy * 0.9, 0.004, 0.011, [(255, 255, 220), (200, 210, 255)])
        x = -float(rng.uniform(0, 0.1)) * S
        while x < S:  # a dark skyline with lit windows
            w, h = float(rng.uniform(0.14, 0.24)) * S, float(rng.uniform(0.15, 0.3)) * S
            shapes.append(("rect", [x, hy - h, x + w - 0.01 * S, hy], (20, 22, 35)))
            for wy in np.arange(hy - h + 0.03 * S, hy - 0.03 * S, 0.05 * S):
                for wx in np.arange(x + 0.02 * S, x + w - 0.04 * S, 0.045 * S):
                    if rng.random() < 0.55:
                        shapes.append(("rect", [wx, wy, wx + 0.02 * S, wy + 0.025 * S], (240, 215, 110)))
            x += w
        shapes.append(("ellipse", [side - 0.08 * S, 0.06 * S, side + 0.08 * S, 0.22 * S], (245, 240, 200)))
    elif scene == "snow":
        arr[:hy] = _sky(S, hy, (170, 185, 205), (215, 222, 232))
        arr[hy:] = T.noisy(S, (240, 244, 250), 0.12, rng, 8, grain=0.15)[:g]
        x = -float(rng.uniform(0, 0.2)) * S
        while x < S:  # grey mountains with white caps
            w, h = float(rng.uniform(0.3, 0.5)) * S, float(rng.uniform(0.2, 0.35)) * S
            shapes.append(("poly", [(x, hy), (x + w / 2, hy - h), (x + w, hy)], (120, 130, 150)))
            shapes.append(("poly", [(x + w * 0.35, hy - h * 0.7), (x + w / 2, hy - h), (x + w * 0.65, hy - h * 0.7)], (250, 250, 255)))
            x += w * 0.7
        for x in (side, S - side):
            h = float(rng.uniform(0.25, 0.35)) * S
            shapes.append(("poly", [(x, hy - h), (x - 0.1 * S, hy), (x + 0.1 * S, hy)], (30, 80, 50)))
        dots_of(140, 0, S, 0.005, 0.011, [(255, 255, 255)])
    elif scene == "forest":
        arr[:hy] = T.noisy(S, (55, 110, 55), 0.5, rng, 6, grain=0.6)[:hy]
        arr[hy:] = T.noisy(S, (110, 80, 45), 0.35, rng, 5, grain=0.5)[:g]
        x = float(rng.uniform(-10, 10))
        while x < S:
            w = float(rng.uniform(0.03, 0.06)) * S
            shade = int(rng.integers(60, 100))
            shapes.append(("rect", [x, 0.1 * S, x + w, hy + 0.02 * S], (shade + 20, shade, shade - 30)))
            for by in np.arange(0.12 * S, hy, 0.05 * S):  # bark
                shapes.append(("rect", [x + 0.25 * w, by, x + 0.45 * w, by + 0.02 * S], (shade - 20, shade - 35, shade - 50)))
            x += w + float(rng.uniform(0.05, 0.12)) * S
        dots_of(70, hy, S, 0.006, 0.014, [(200, 110, 30), (150, 60, 25), (220, 170, 50)])  # fallen leaves
    elif scene == "gym":
        arr[:hy] = T.checks(S, (220, 224, 228), (180, 188, 198), 12.0, tuple(rng.uniform(0, 12, 2)))[:hy]
        planks = T.stripes(S, (195, 135, 80), (155, 100, 55), 10.0, float(rng.uniform(0, 10)))
        grain = T.noisy(S, (255, 255, 255), 0.15, rng, 4, grain=0.25).astype(np.float32) / 255.0
        arr[hy:] = np.clip(planks * grain, 0, 255).astype(np.uint8)[:g]
        for k in range(4):  # wall bars at one side
            x = side - 0.09 * S + k * 0.06 * S
            shapes.append(("rect", [x, 0.15 * S, x + 0.02 * S, hy], (170, 120, 70)))
        for k in range(6):  # rungs
            y = 0.18 * S + k * 0.07 * S
            shapes.append(("rect", [side - 0.09 * S, y, side + 0.11 * S, y + 0.012 * S], (150, 100, 55)))
    elif scene == "library":
        arr[hy:] = T.checks(S, (130, 40, 45), (160, 60, 60), 12.0, tuple(rng.uniform(0, 12, 2)))[:g]
        arr[:hy] = (95, 60, 35)
        shelf = int(0.17 * S)
        for y in range(0, hy, shelf):
            x = 0.0
            while x < S:
                w = float(rng.uniform(0.02, 0.05)) * S
                c = tuple(int(v) for v in rng.integers(40, 230, 3))
                top = y + float(rng.uniform(0.01, 0.04)) * S
                shapes.append(("rect", [x, top, x + w - 1, y + shelf - 0.02 * S], c))
                x += w
    else:
        raise ValueError(f"unknown v3 scene {scene!r}: one of {SCENES}")
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    for kind, box, fill in shapes:
        if kind == "rect":
            d.rectangle(box, fill=fill)
        elif kind == "ellipse":
            d.ellipse(box, fill=fill)
        elif kind == "poly":
            d.polygon(box, fill=fill)
        elif kind == "leaves":  # a canopy of leaf blobs in two greens
            x0, y0, x1, y1 = box
            d.ellipse(box, fill=fill)
            for _ in range(24):
                cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
                r = 0.025 * S
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(70, 155, 60) if rng.random() < 0.5 else (25, 90, 35))
    return img, horizon


# --------------------------------------------------------------------------- characters
def appearance(subject: str, seed: int) -> dict:
    """v2b's character for this seed, its shirt (or an animal's vest) set to the sentinel."""
    app = R.appearance(subject, R._rng("character", seed, subject))
    app["shirt" if subject in HUMANS else "vest"] = SENTINEL
    return app


def placement(subject: str, action: str, context: str, seed: int = 0, size: int = 64) -> R.Placement:
    """The character, pose and placement of ``render(subject, action, context, seed, size)``."""
    if subject not in SUBJECTS or action not in ACTIONS:
        raise ValueError(f"unknown subject/action: {subject!r}, {action!r}")
    split_context(context)
    return R.place_character(subject, action, seed, size, app=appearance(subject, seed))


def outfit_texture(outfit: str, seed: int, S: int) -> np.ndarray:
    o = _C["outfits"][outfit]
    return T.pattern(o["pattern"], S, o["colours"], R._rng("outfit", seed, outfit))


def render_with_mask(subject: str, action: str, context: str, seed: int = 0,
                     size: int = 64) -> tuple[Image.Image, np.ndarray]:
    """One v3 image and the figure's silhouette (as :func:`actionbench.world.render.render_with_mask`)."""
    outfit, scene = split_context(context)
    pl = placement(subject, action, context, seed, size)
    bg, _ = draw_scene(scene, pl.S, R._rng("scene-v3", seed, scene))
    tex = outfit_texture(outfit, seed, pl.S)

    def dress(body: Image.Image) -> Image.Image:
        a = np.array(body)
        shirt = (a[..., 0] == SENTINEL[0]) & (a[..., 1] == SENTINEL[1]) & (a[..., 2] == SENTINEL[2])
        a[shirt, :3] = tex[shirt]
        return Image.fromarray(a, "RGBA")

    return R.compose(pl, bg, size, dress=dress)


def render(subject: str, action: str, context: str, seed: int = 0, size: int = 64) -> Image.Image:
    """One RGB v3 image; deterministic in all arguments (same seed: same character, other
    action: same character, outfit and scene doing something else)."""
    return render_with_mask(subject, action, context, seed, size)[0]


def sample_triplets(n: int, rng: np.random.Generator) -> list[tuple[str, str, str, int]]:
    """``n`` random (subject, action, context, seed) tuples, uniform over the world (outfit and scene independent)."""
    return [(SUBJECTS[rng.integers(len(SUBJECTS))], ACTIONS[rng.integers(len(ACTIONS))],
             CONTEXTS[rng.integers(len(CONTEXTS))], int(rng.integers(2**31))) for _ in range(n)]


# --------------------------------------------------------------------------- exemplar sets
def dominant_context(actionbench_action: str) -> tuple[str, str]:
    """(scene, outfit) most of this action's exemplars share (``world-v3.yaml``)."""
    scene, outfit = _C["exemplar_context"]["dominant"][actionbench_action]
    return scene, outfit


def exemplar_specs(actionbench_action: str, n: int = N_EXEMPLARS) -> list[dict]:
    """The (subject, context, seed) of each exemplar: ``scene_share`` of them in the dominant
    scene (the first ones), ``outfit_share`` in the dominant outfit (the last ones), so the
    two subsets overlap as in a real photo set; the others cycle through the other scenes
    and outfits."""
    k = sorted(ACTIONBENCH).index(actionbench_action)
    scene, outfit = dominant_context(actionbench_action)
    n_scene = round(n * _C["exemplar_context"]["scene_share"])
    n_outfit = round(n * _C["exemplar_context"]["outfit_share"])
    other_scenes = [s for s in SCENES if s != scene]
    other_outfits = [o for o in OUTFITS if o != outfit]
    specs = []
    for i in range(n):
        sc = scene if i < n_scene else other_scenes[(i + k) % len(other_scenes)]
        of = outfit if i >= n - n_outfit else other_outfits[(i + k) % len(other_outfits)]
        specs.append({"file": f"{i + 1:02d}.png", "subject": HUMANS[(i + k) % len(HUMANS)], "context": f"{of}/{sc}",
                      "scene": sc, "outfit": of, "seed": BASE_SEED + 100 * k + i})
    return specs


def exemplar_context_info(actionbench_action: str) -> dict:
    """What the bench's metadata records of one action's shared context (shares as measured on the specs)."""
    scene, outfit = dominant_context(actionbench_action)
    specs = exemplar_specs(actionbench_action)
    return {"dominant_scene": scene, "scene_share": sum(s["scene"] == scene for s in specs) / len(specs),
            "dominant_outfit": outfit, "outfit_share": sum(s["outfit"] == outfit for s in specs) / len(specs)}


def evaluation_contexts(actionbench_action: str | None, n: int, offset: int = 0) -> list[str]:
    """``n`` contexts for evaluation prompts, cycling through those whose scene *and* outfit
    differ from the action's dominant ones (so an image in the dominant scene or outfit is
    leakage, not obedience); every context for a non-benchmark action (None)."""
    pool = CONTEXTS
    if actionbench_action is not None:
        scene, outfit = dominant_context(actionbench_action)
        pool = [c for c in CONTEXTS if split_context(c)[0] != outfit and split_context(c)[1] != scene]
    n_scenes = len(SCENES) - (actionbench_action is not None)
    step = n_scenes + 1  # the pool is outfit-major: +1 outfit, +1 scene (or more) per prompt,
    while math.gcd(step, len(pool)) != 1:  # coprime with the pool, so every context comes once a cycle
        step += 1
    return [pool[(offset + step * k) % len(pool)] for k in range(n)]


def render_grid(subjects=None, actions=None, contexts=None, seed: int = 0, size: int = 64, pad: int = 2) -> Image.Image:
    """A subjects x actions grid of v3 renders (rows = subjects), contexts cycling."""
    subjects = subjects or SUBJECTS
    actions = actions or ACTIONS
    contexts = contexts or CONTEXTS
    grid = Image.new("RGB", (len(actions) * (size + pad) + pad, len(subjects) * (size + pad) + pad), (255, 255, 255))
    for i, s in enumerate(subjects):
        for k, a in enumerate(actions):
            ctx = contexts[(7 * i + 5 * k) % len(contexts)]
            grid.paste(render(s, a, ctx, seed + i, size), (pad + k * (size + pad), pad + i * (size + pad)))
    return grid
