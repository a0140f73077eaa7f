"""ActionWorld renderer: cartoon characters in articulated poses, drawn with PIL.

``render(subject, action, context, seed, size=64)`` is a pure function of its arguments.
The seed fixes the *character and scene* (clothes and hair colours, position, scale,
mirror, background layout) and, per action, the joint-angle jitter; so the same seed with
another action shows the same character in the same scene doing something else (this is
how ActionBench's action-different sets are made).

Geometry: a skeleton in a *body frame* (pelvis at the origin, y down, unit = standing
height); every limb angle is in degrees, 0 = pointing down, 90 = image right, 180 = up.
The body frame is rotated (handstand), mirrored, scaled and placed on the ground, and all
shapes are drawn at 4x resolution then downsampled for smooth edges.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

WORLD_YAML = Path(__file__).with_name("world.yaml")
SUPERSAMPLE = 4


@lru_cache(maxsize=1)
def world_config() -> dict:
    """The parsed ``world.yaml`` (subjects, actions, contexts and their phrases)."""
    return yaml.safe_load(WORLD_YAML.read_text())


SUBJECTS: list[str] = list(world_config()["subjects"])
ACTIONS: list[str] = list(world_config()["actions"])
CONTEXTS: list[str] = list(world_config()["contexts"])
HUMANS: list[str] = [s for s in SUBJECTS if world_config()["subjects"][s]["human"]]
ANIMALS: list[str] = [s for s in SUBJECTS if not world_config()["subjects"][s]["human"]]
UNNAMED: list[str] = [a for a in ACTIONS if world_config()["actions"][a]["unnamed"]]
NAMED: list[str] = [a for a in ACTIONS if not world_config()["actions"][a]["unnamed"]]
# ActionBench folder name -> world action
ACTIONBENCH: dict[str, str] = {
    v["actionbench"]: a for a, v in world_config()["actions"].items() if v["actionbench"]
}


def subject_phrase(subject: str) -> str:
    return world_config()["subjects"][subject]["phrase"]


def action_phrase(action: str) -> str:
    return world_config()["actions"][action]["phrase"]


def context_phrase(context: str) -> str:
    return world_config()["contexts"][context]


def caption(subject: str, action: str, context: str, name_action: bool | None = None) -> str:
    """Training caption: "a panda squats in a park"; unnamed actions leave the phrase out."""
    if name_action is None:
        name_action = action not in UNNAMED
    parts = [subject_phrase(subject)] + ([action_phrase(action)] if name_action else []) + [context_phrase(context)]
    return " ".join(parts)


# --------------------------------------------------------------------------- poses
# Body-frame joint angles (degrees): upper arm / forearm / thigh / shin, right (r) and left (l).
# "r" limbs are on the image's right before mirroring. Extra keys: inverted (handstand),
# lift (airborne height), chair (sit), ground ("feet", "hands", "pelvis").
POSES: dict[str, dict] = {
    "stand":     dict(ua_r=10, fa_r=5, ua_l=-10, fa_l=-5, th_r=4, sh_r=2, th_l=-4, sh_l=-2),
    "walk":      dict(ua_r=35, fa_r=60, ua_l=-28, fa_l=-15, th_r=28, sh_r=8, th_l=-22, sh_l=-45, lean=-6),
    "wave":      dict(ua_r=100, fa_r=160, ua_l=-10, fa_l=-5, th_r=5, sh_r=2, th_l=-5, sh_l=-2, open_hand="r"),
    "jump":      dict(ua_r=130, fa_r=140, ua_l=-130, fa_l=-140, th_r=32, sh_r=38, th_l=-32, sh_l=-38, lift=0.16),
    "salute":    dict(ua_r=128, fa_r=-118, ua_l=-8, fa_l=-4, th_r=4, sh_r=2, th_l=-4, sh_l=-2, flat_hand="r"),
    "gesture":   dict(ua_r=172, fa_r=178, ua_l=-10, fa_l=-5, th_r=4, sh_r=2, th_l=-4, sh_l=-2, finger="r"),
    "cheer":     dict(ua_r=150, fa_r=162, ua_l=-150, fa_l=-162, th_r=8, sh_r=4, th_l=-8, sh_l=-4, open_hand="rl"),
    "pray":      dict(ua_r=14, fa_r=-112, ua_l=-14, fa_l=112, th_r=4, sh_r=2, th_l=-4, sh_l=-2),
    "sit":       dict(ua_r=18, fa_r=75, ua_l=8, fa_l=70, th_r=88, sh_r=2, th_l=84, sh_l=-4, chair=True),
    "squat":     dict(ua_r=80, fa_r=88, ua_l=-80, fa_l=-88, th_r=72, sh_r=6, th_l=-72, sh_l=-6),
    "meditate":  dict(ua_r=22, fa_r=48, ua_l=-22, fa_l=-48, th_r=100, sh_r=-74, th_l=-100, sh_l=74, ground="pelvis"),
    "handstand": dict(ua_r=168, fa_r=172, ua_l=-168, fa_l=-172, th_r=8, sh_r=4, th_l=-8, sh_l=-4, inverted=True, ground="hands"),
}
ANGLE_KEYS = ("ua_r", "fa_r", "ua_l", "fa_l", "th_r", "sh_r", "th_l", "sh_l")
JITTER_DEG = 7.0

# body proportions (unit = standing height of an adult). World v2: bold, frame-filling
# figures (a standing adult is about 80% of the frame; limbs 4-6 px thick at 64 px, heads
# about 15 px across) so that pose and kind can be read at the model's resolution.
TORSO, NECK, HEAD_R = 0.29, 0.02, 0.125
UPPER_ARM, FOREARM, THIGH, SHIN = 0.15, 0.14, 0.19, 0.19
SHOULDER_HALF, HIP_HALF = 0.095, 0.06
LIMB_W, TORSO_W = 0.092, 0.22
FIGURE_HEIGHT = (0.78, 0.86)  # standing height / frame side, before the kind's size
FRAME_MARGIN = 0.03  # the drawn figure stays this far (fraction of the side) inside the frame


def _d(theta: float) -> np.ndarray:
    t = math.radians(theta)
    return np.array([math.sin(t), math.cos(t)])


@dataclass
class Skeleton:
    """Joint positions in the body frame (pelvis at origin, y down)."""

    joints: dict[str, np.ndarray]
    torso_dir: float


def skeleton(pose: dict, scale_limbs: float = 1.0) -> Skeleton:
    """Forward kinematics of a pose (angles in the body frame)."""
    j = {"pelvis": np.zeros(2)}
    up = 180.0 + pose.get("lean", 0.0)
    j["neck"] = j["pelvis"] + TORSO * _d(up)
    j["head"] = j["neck"] + (NECK + HEAD_R) * _d(up)
    right = _d(up - 90)
    for side, sgn in (("r", 1), ("l", -1)):
        sh = j["neck"] + sgn * SHOULDER_HALF * right + 0.02 * _d(up + 180)
        el = sh + UPPER_ARM * scale_limbs * _d(pose[f"ua_{side}"])
        ha = el + FOREARM * scale_limbs * _d(pose[f"fa_{side}"])
        hip = j["pelvis"] + sgn * HIP_HALF * right
        kn = hip + THIGH * scale_limbs * _d(pose[f"th_{side}"])
        ft = kn + SHIN * scale_limbs * _d(pose[f"sh_{side}"])
        j.update({f"shoulder_{side}": sh, f"elbow_{side}": el, f"hand_{side}": ha,
                  f"hip_{side}": hip, f"knee_{side}": kn, f"foot_{side}": ft})
    return Skeleton(j, up)


def jittered_pose(action: str, rng: np.random.Generator) -> dict:
    """The action's canonical pose with per-joint angle jitter (exemplars alike, not identical)."""
    pose = dict(POSES[action])
    for k in ANGLE_KEYS:
        pose[k] = pose[k] + float(rng.normal(0, JITTER_DEG))
    pose["lean"] = pose.get("lean", 0.0) + float(rng.normal(0, 3))
    if "lift" in pose:
        pose["lift"] = pose["lift"] * float(rng.uniform(0.8, 1.2))
    return pose


# --------------------------------------------------------------------------- appearance
CLOTHES = [(200, 40, 40), (40, 80, 200), (40, 150, 60), (230, 190, 40), (140, 60, 170), (20, 160, 160), (240, 120, 30), (60, 60, 70)]
TROUSERS = [(40, 50, 90), (60, 60, 60), (110, 80, 50), (30, 30, 35), (80, 90, 110)]
SKIN = [(238, 200, 170), (215, 165, 125), (175, 120, 85), (120, 80, 55)]
HAIR = [(40, 30, 20), (90, 60, 30), (200, 160, 80), (20, 20, 20), (140, 60, 30)]

FUR = {
    "cat": dict(fur=(150, 150, 158), belly=(205, 205, 210), paw=(120, 120, 128)),
    "dog": dict(fur=(196, 150, 90), belly=(235, 215, 175), paw=(150, 105, 60)),
    "bear": dict(fur=(100, 62, 35), belly=(160, 115, 75), paw=(70, 42, 22)),
    "panda": dict(fur=(245, 245, 245), belly=(245, 245, 245), paw=(25, 25, 25)),
    "fox": dict(fur=(232, 110, 30), belly=(250, 245, 235), paw=(40, 30, 25)),
}


def appearance(subject: str, rng: np.random.Generator) -> dict:
    """Colours and sizes of one character (fixed by the seed, not by the action)."""
    a: dict = {"subject": subject, "size": 1.0, "head": 1.0, "limb": 1.0, "torso_w": 1.0}
    if subject in FUR:
        a.update(FUR[subject])
        a["torso_w"] = {"bear": 1.35, "panda": 1.35, "dog": 1.1, "cat": 0.95, "fox": 1.0}[subject]
        a["limb"] = {"bear": 1.35, "panda": 1.35, "dog": 1.1, "cat": 0.9, "fox": 1.0}[subject]
        a["head"] = {"bear": 1.15, "panda": 1.15, "dog": 1.05, "cat": 1.0, "fox": 1.0}[subject]
        a["size"] = {"bear": 1.05, "panda": 1.05, "dog": 0.95, "cat": 0.88, "fox": 0.92}[subject]
        return a
    a["skin"] = SKIN[rng.integers(len(SKIN))]
    a["shirt"] = CLOTHES[rng.integers(len(CLOTHES))]
    a["trousers"] = TROUSERS[rng.integers(len(TROUSERS))]
    a["hair"] = HAIR[rng.integers(len(HAIR))]
    if subject == "woman":
        a["size"], a["torso_w"] = 0.95, 0.9
    elif subject == "boy":
        a["size"], a["head"] = 0.8, 1.2
    elif subject == "old_man":
        a["hair"] = (225, 225, 225)
        a["shirt"] = [(120, 95, 70), (110, 110, 120), (70, 90, 80)][rng.integers(3)]
        a["size"] = 0.95
    return a


# --------------------------------------------------------------------------- scene
def _lerp(c0, c1, t):
    return tuple(int(a + (b - a) * t) for a, b in zip(c0, c1))


def draw_background(context: str, S: int, rng: np.random.Generator) -> tuple[Image.Image, float]:
    """A plain scene of side ``S`` (sky gradient, ground, one bold cue); returns it and the horizon (fraction of S).

    World v2 keeps four scenes with few, large shapes: a scene a leaky method could copy,
    not clutter that competes with a 64 px figure.
    """
    horizon = float(rng.uniform(0.58, 0.68))
    hy = int(horizon * S)
    skies = {
        "park": ((110, 175, 240), (185, 222, 250)), "beach": ((80, 165, 235), (195, 232, 250)),
        "city": ((150, 158, 172), (198, 202, 210)), "night": ((8, 12, 40), (30, 40, 85)),
    }
    grounds = {"park": (70, 150, 60), "beach": (232, 210, 150), "city": (95, 95, 100), "night": (25, 55, 35)}
    top, bot = skies[context]
    col = np.linspace(0, 1, hy)[:, None]
    sky = (np.array(top)[None, :] * (1 - col) + np.array(bot)[None, :] * col).astype(np.uint8)
    arr = np.zeros((S, S, 3), np.uint8)
    arr[:hy] = sky[:, None, :]
    arr[hy:] = grounds[context]
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    side = float(rng.choice([0.12, 0.88])) * S  # cues stand at one side, clear of the figure
    if context == "park":  # one big tree
        h = float(rng.uniform(0.3, 0.4)) * S
        d.rectangle([side - 0.03 * S, hy - h * 0.5, side + 0.03 * S, hy + 0.01 * S], fill=(110, 75, 40))
        d.ellipse([side - 0.14 * S, hy - h, side + 0.14 * S, hy - h * 0.35], fill=(40, 120, 45))
    elif context == "beach":  # the sea and the sun
        d.rectangle([0, int(hy - 0.08 * S), S, hy], fill=(40, 120, 190))
        d.ellipse([side - 0.08 * S, 0.06 * S, side + 0.08 * S, 0.22 * S], fill=(255, 225, 80))
    elif context == "city":  # a row of tall buildings
        x = -float(rng.uniform(0, 0.1)) * S
        while x < S:
            w = float(rng.uniform(0.18, 0.28)) * S
            h = float(rng.uniform(0.3, 0.5)) * S
            shade = int(rng.integers(60, 110))
            d.rectangle([x, hy - h, x + w - 0.015 * S, hy], fill=(shade, shade, shade + 10))
            d.rectangle([x + 0.04 * S, hy - h + 0.05 * S, x + w - 0.06 * S, hy - h + 0.09 * S], fill=(230, 210, 120))
            x += w
    elif context == "night":  # the moon and a few big stars
        d.ellipse([side - 0.08 * S, 0.06 * S, side + 0.08 * S, 0.22 * S], fill=(245, 240, 200))
        for _ in range(6):
            x, y = rng.uniform(0, S), rng.uniform(0, hy * 0.8)
            d.ellipse([x - 0.012 * S, y - 0.012 * S, x + 0.012 * S, y + 0.012 * S], fill=(255, 255, 220))
    return img, horizon


# --------------------------------------------------------------------------- character
class _Pen:
    """Draws body-frame shapes onto an RGBA layer through a similarity transform."""

    def __init__(self, draw: ImageDraw.ImageDraw, origin, scale: float, rot: float):
        self.d, self.o, self.s = draw, np.asarray(origin, float), scale
        r = math.radians(rot)
        self.R = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])

    def p(self, q) -> tuple[float, float]:
        v = self.o + self.s * (self.R @ np.asarray(q, float))
        return float(v[0]), float(v[1])

    def circle(self, c, r, fill):
        x, y = self.p(c)
        r = r * self.s
        self.d.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    def ellipse(self, c, rx, ry, fill, angle=0.0):
        t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        a = math.radians(angle)
        pts = [(c[0] + rx * math.cos(u) * math.cos(a) - ry * math.sin(u) * math.sin(a),
                c[1] + rx * math.cos(u) * math.sin(a) + ry * math.sin(u) * math.cos(a)) for u in t]
        self.poly(pts, fill)

    def poly(self, pts, fill):
        self.d.polygon([self.p(q) for q in pts], fill=fill)

    def capsule(self, a, b, w, fill):
        self.d.line([self.p(a), self.p(b)], fill=fill, width=max(1, int(round(w * self.s))))
        self.circle(a, w / 2, fill)
        self.circle(b, w / 2, fill)


def _local(center, up_deg, pts):
    """Points given in a head frame (x right, y down, unit = head radius) -> body frame."""
    r = math.radians(up_deg - 180)
    R = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    return [tuple(np.asarray(center) + HEAD_R * (R @ np.asarray(p, float))) for p in pts]


def draw_head(pen: _Pen, app: dict, center, up: float, k: float):
    """The head: the part that tells the subject kinds apart (hair, ears, snout, patches)."""
    s = app["subject"]
    L = lambda pts: _local(center, up, [(x * k, y * k) for x, y in pts])  # noqa: E731
    rad = HEAD_R * k
    dark = (20, 20, 20)
    if s in ("man", "woman", "boy", "old_man"):
        if s == "woman":  # long hair behind the head, down to the shoulders
            pen.poly(L([(-1.15, -0.4), (1.15, -0.4), (1.25, 1.5), (-1.25, 1.5)]), app["hair"])
        pen.circle(center, rad, app["skin"])
        if s in ("man", "boy", "woman"):
            pen.poly(L([(-1.02, -0.1), (-0.9, -0.7), (-0.4, -1.05), (0.4, -1.05), (0.9, -0.7), (1.02, -0.1), (0.6, -0.5), (-0.6, -0.5)]), app["hair"])
        if s == "boy":  # cap
            pen.poly(L([(-0.95, -0.55), (-0.6, -1.05), (0.6, -1.05), (0.95, -0.55)]), app["shirt"])
            pen.poly(L([(0.2, -0.6), (1.5, -0.6), (1.5, -0.45), (0.2, -0.45)]), app["shirt"])
        if s == "old_man":  # white side hair, beard, glasses
            pen.poly(L([(-1.05, -0.5), (-0.7, -0.5), (-0.75, 0.2), (-1.05, 0.1)]), app["hair"])
            pen.poly(L([(1.05, -0.5), (0.7, -0.5), (0.75, 0.2), (1.05, 0.1)]), app["hair"])
            pen.poly(L([(-0.8, 0.25), (0.8, 0.25), (0.5, 1.25), (0, 1.45), (-0.5, 1.25)]), app["hair"])
            for x in (-0.38, 0.38):
                pen.circle(L([(x, -0.05)])[0], 0.28 * rad, dark)
                pen.circle(L([(x, -0.05)])[0], 0.18 * rad, app["skin"])
        for x in (-0.35, 0.35):
            pen.circle(L([(x, -0.05)])[0], 0.12 * rad, dark)
        return
    fur, belly = app["fur"], app["belly"]
    if s == "cat":
        for sg in (-1, 1):
            pen.poly(L([(sg * 0.95, -0.3), (sg * 0.85, -1.45), (sg * 0.25, -0.85)]), fur)
            pen.poly(L([(sg * 0.8, -0.45), (sg * 0.78, -1.15), (sg * 0.42, -0.8)]), (235, 160, 170))
        pen.circle(center, rad, fur)
        for sg in (-1, 1):
            pen.circle(L([(sg * 0.4, -0.1)])[0], 0.16 * rad, (90, 170, 60))
        pen.circle(L([(0, 0.3)])[0], 0.13 * rad, (235, 130, 150))
        for sg in (-1, 1):
            for dy in (0.2, 0.45):
                a, b = L([(sg * 0.3, 0.35), (sg * 1.5, dy)])
                pen.d.line([pen.p(a), pen.p(b)], fill=dark, width=max(1, int(0.04 * rad * pen.s)))
    elif s == "dog":
        pen.circle(center, rad, fur)
        for sg in (-1, 1):
            pen.ellipse(L([(sg * 1.0, 0.25)])[0], 0.32 * rad, 0.75 * rad, app["paw"], angle=sg * 15)
        pen.ellipse(L([(0, 0.5)])[0], 0.55 * rad, 0.42 * rad, belly)
        pen.circle(L([(0, 0.32)])[0], 0.2 * rad, dark)
        for sg in (-1, 1):
            pen.circle(L([(sg * 0.38, -0.2)])[0], 0.12 * rad, dark)
    elif s == "bear":
        for sg in (-1, 1):
            pen.circle(L([(sg * 0.78, -0.78)])[0], 0.36 * rad, fur)
            pen.circle(L([(sg * 0.78, -0.78)])[0], 0.18 * rad, belly)
        pen.circle(center, rad, fur)
        pen.ellipse(L([(0, 0.45)])[0], 0.5 * rad, 0.38 * rad, belly)
        pen.circle(L([(0, 0.3)])[0], 0.17 * rad, dark)
        for sg in (-1, 1):
            pen.circle(L([(sg * 0.38, -0.2)])[0], 0.12 * rad, dark)
    elif s == "panda":
        for sg in (-1, 1):
            pen.circle(L([(sg * 0.8, -0.8)])[0], 0.38 * rad, dark)
        pen.circle(center, rad, fur)
        for sg in (-1, 1):
            pen.ellipse(L([(sg * 0.4, -0.08)])[0], 0.26 * rad, 0.34 * rad, dark, angle=sg * 30)
            pen.circle(L([(sg * 0.4, -0.12)])[0], 0.08 * rad, (255, 255, 255))
        pen.circle(L([(0, 0.4)])[0], 0.15 * rad, dark)
    elif s == "fox":
        for sg in (-1, 1):
            pen.poly(L([(sg * 1.0, -0.1), (sg * 1.0, -1.75), (sg * 0.2, -0.8)]), fur)
            pen.poly(L([(sg * 1.0, -1.2), (sg * 1.0, -1.75), (sg * 0.72, -1.45)]), dark)
        pen.poly(L([(-1.0, -0.3), (1.0, -0.3), (1.1, 0.3), (0, 1.35), (-1.1, 0.3)]), fur)
        pen.circle(center, rad * 0.95, fur)
        pen.poly(L([(-1.1, 0.3), (0, 0.35), (1.1, 0.3), (0, 1.35)]), belly)
        pen.circle(L([(0, 1.2)])[0], 0.16 * rad, dark)
        for sg in (-1, 1):
            pen.circle(L([(sg * 0.4, -0.15)])[0], 0.12 * rad, dark)


def draw_tail(pen: _Pen, app: dict, sk: Skeleton):
    s = app["subject"]
    p = sk.joints["pelvis"] + np.array([0.0, -0.02])
    if s == "cat":
        pts = [p, p + [0.12, 0.02], p + [0.2, -0.06], p + [0.22, -0.18]]
        for a, b in zip(pts[:-1], pts[1:]):
            pen.capsule(a, b, 0.035, app["fur"])
    elif s == "fox":
        pen.ellipse(p + [0.14, -0.06], 0.15, 0.07, app["fur"], angle=-35)
        pen.ellipse(p + [0.25, -0.14], 0.05, 0.045, app["belly"], angle=-35)
    elif s == "dog":
        pen.capsule(p, p + [0.12, -0.1], 0.04, app["fur"])
    elif s in ("bear", "panda"):
        pen.circle(p + [0.09, 0.0], 0.04, app["paw"] if s == "panda" else app["fur"])


def draw_character(layer: Image.Image, subject: str, app: dict, pose: dict, origin, scale: float):
    """Draw one character in ``pose`` onto the RGBA ``layer``; body frame origin at ``origin``."""
    sk = skeleton(pose)
    j = sk.joints
    pen = _Pen(ImageDraw.Draw(layer), origin, scale, 180.0 if pose.get("inverted") else 0.0)
    animal = subject in FUR
    lw = LIMB_W * app["limb"]
    tw = TORSO_W * app["torso_w"]
    if animal:
        arm_c, leg_c, torso_c = app["fur"], app["fur"], app["fur"]
        hand_c, foot_c = app["paw"], app["paw"]
        if subject == "panda":
            arm_c = leg_c = app["paw"]
        if "vest" in app:  # v3: animals wear the outfit's shirt as a vest over the torso
            torso_c = app["vest"]
    else:
        arm_c, torso_c = app["shirt"], app["shirt"]
        leg_c = app["trousers"]
        hand_c, foot_c = app["skin"], (35, 30, 30)
        if subject == "woman":
            leg_c = app["skin"]
    if pose.get("chair"):
        seat_y = j["pelvis"][1] + lw * 0.6
        x0, x1 = j["pelvis"][0] - 0.12, j["pelvis"][0] + 0.12
        chair = (120, 80, 45)
        pen.poly([(x0, seat_y), (x1, seat_y), (x1, seat_y + 0.04), (x0, seat_y + 0.04)], chair)
        pen.poly([(x0 - 0.005, seat_y - 0.3), (x0 + 0.03, seat_y - 0.3), (x0 + 0.03, seat_y), (x0 - 0.005, seat_y)], chair)
        foot_y = max(j["foot_r"][1], j["foot_l"][1]) + lw / 2
        for x in (x0 + 0.01, x1 - 0.02):
            pen.poly([(x, seat_y), (x + 0.025, seat_y), (x + 0.025, foot_y), (x, foot_y)], chair)
    if animal:
        draw_tail(pen, app, sk)
    # torso as a rounded quad from pelvis to neck
    up = _d(sk.torso_dir)
    right = _d(sk.torso_dir - 90)
    top = j["neck"] - 0.01 * up
    bot = j["pelvis"] - 0.02 * up
    pen.poly([top - right * tw / 2, top + right * tw / 2, bot + right * tw * 0.48, bot - right * tw * 0.48], torso_c)
    pen.circle(top - right * tw * 0.35, tw * 0.15, torso_c)
    pen.circle(top + right * tw * 0.35, tw * 0.15, torso_c)
    pen.circle(bot, tw * 0.46, torso_c if not (animal and subject != "panda") else torso_c)
    if animal and "vest" not in app:  # belly patch
        pen.ellipse(j["pelvis"] + 0.13 * up, tw * 0.3, 0.1, app["belly"] if subject != "panda" else (245, 245, 245))
        if subject == "panda":  # black shoulder band
            pen.capsule(j["shoulder_r"], j["shoulder_l"], lw * 1.1, app["paw"])
    for side in ("r", "l"):
        thigh_c = leg_c
        shin_c = leg_c
        if subject == "boy":
            thigh_c, shin_c = app["trousers"], app["skin"]
        pen.capsule(j[f"hip_{side}"], j[f"knee_{side}"], lw * 1.1, thigh_c)
        pen.capsule(j[f"knee_{side}"], j[f"foot_{side}"], lw, shin_c)
        pen.circle(j[f"foot_{side}"], lw * 0.65, foot_c)
    if subject == "woman":  # skirt
        pen.poly([j["pelvis"] + 0.06 * up - right * tw * 0.5, j["pelvis"] + 0.06 * up + right * tw * 0.5,
                  j["pelvis"] - 0.11 * up + right * tw * 0.85, j["pelvis"] - 0.11 * up - right * tw * 0.85], app["shirt"])
    for side in ("r", "l"):
        pen.capsule(j[f"shoulder_{side}"], j[f"elbow_{side}"], lw, arm_c)
        pen.capsule(j[f"elbow_{side}"], j[f"hand_{side}"], lw * 0.9, arm_c)
        hand = j[f"hand_{side}"]
        big = side in pose.get("open_hand", "") or side in pose.get("flat_hand", "")
        pen.circle(hand, lw * (0.75 if big else 0.6), hand_c)
        if side in pose.get("finger", ""):
            fdir = _d(pose[f"fa_{side}"])
            pen.capsule(hand, hand + 0.07 * fdir, lw * 0.32, hand_c)
    draw_head(pen, app, j["head"], sk.torso_dir, app["head"])


def extent(pose: dict, app: dict) -> tuple[float, float, float, float]:
    """Bounding box (xmin, xmax, ymin, ymax) of the drawn figure around its body-frame origin,
    after the handstand rotation, in units of standing height (y down)."""
    sk = skeleton(pose)
    sgn = -1.0 if pose.get("inverted") else 1.0
    lw = LIMB_W * app["limb"]
    pts, pads = [], []
    for name, q in sk.joints.items():
        pts.append(sgn * q)
        pads.append(HEAD_R * app["head"] * 1.6 if name == "head" else max(lw * 0.7, TORSO_W * app["torso_w"] * 0.5 if name in ("pelvis", "neck") else 0))
    if pose.get("chair"):  # the chair's back and legs
        p = sk.joints["pelvis"]
        pts += [sgn * (p + np.array([-0.13, -0.3])), sgn * (p + np.array([0.13, 0.0]))]
        pads += [0.0, 0.0]
    if app["subject"] in FUR:  # tails reach behind the pelvis
        pts.append(sgn * (sk.joints["pelvis"] + np.array([0.3, -0.2])))
        pads.append(0.0)
    P, r = np.array(pts), np.array(pads)
    return (float((P[:, 0] - r).min()), float((P[:, 0] + r).max()),
            float((P[:, 1] - r).min()), float((P[:, 1] + r).max()))


def _rng(*keys) -> np.random.Generator:
    h = hashlib.sha256("|".join(map(str, keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


@dataclass
class Placement:
    """Where and how one render's character is drawn (supersampled pixels, ``S`` = side).

    A body-frame point ``q`` lands at ``origin + height * rot(q)`` (``rot``: 180 degrees for
    the handstand), then, if ``mirror``, at ``2 cx - x`` (``shift`` is the whole-pixel
    shift of the flipped layer). :func:`to_image` applies it; ``render`` and the skeleton's
    keypoints both go through this one placement.
    """

    app: dict
    pose: dict
    mirror: bool
    S: int
    origin: tuple[float, float]
    height: float
    ground: float
    lift: float

    @property
    def shift(self) -> int:
        return int(round(2 * self.origin[0] - self.S))

    def to_image(self, q) -> tuple[float, float]:
        """A body-frame point -> image coordinates in [0, 1] (x right, y down)."""
        x, y = _Pen(None, self.origin, self.height, 180.0 if self.pose.get("inverted") else 0.0).p(q)
        if self.mirror:
            x = self.S - x + self.shift
        return x / self.S, y / self.S


def placement(subject: str, action: str, context: str, seed: int = 0, size: int = 64) -> Placement:
    """The character, pose and placement of ``render(subject, action, context, seed, size)``."""
    if subject not in SUBJECTS or action not in ACTIONS or context not in CONTEXTS:
        raise ValueError(f"unknown subject/action/context: {subject!r}, {action!r}, {context!r}")
    return place_character(subject, action, seed, size)


def place_character(subject: str, action: str, seed: int = 0, size: int = 64, app: dict | None = None) -> Placement:
    """The character (``app``: drawn from the seed unless given), jittered pose and placement;
    the context plays no part (it only picks the background)."""
    S = size * SUPERSAMPLE
    char_rng = _rng("character", seed, subject)
    place_rng = _rng("place", seed)
    pose_rng = _rng("pose", seed, subject, action)
    app = appearance(subject, char_rng) if app is None else app
    pose = jittered_pose(action, pose_rng)
    mirror = bool(place_rng.integers(2))
    # size: the kind's standing height, shrunk where a pose (arms up, a jump) would leave the frame
    x0, x1, y0, y1 = extent(pose, app)
    if mirror:
        x0, x1 = -x1, -x0
    lift = pose.get("lift", 0.0)
    room = (1 - 2 * FRAME_MARGIN) * S
    height = min(float(place_rng.uniform(*FIGURE_HEIGHT)) * app["size"] * S, room / (y1 - y0 + lift), room / (x1 - x0))
    # the figure's lowest point stands on the ground near the bottom; centred left-right with a little play
    ground = float(place_rng.uniform(0.94, 0.97)) * S
    ground = min(ground, S * (1 - FRAME_MARGIN))
    oy = ground - y1 * height - lift * height
    oy = max(oy, FRAME_MARGIN * S - (y0 - 0.0) * height)  # never above the top margin
    centre = float(place_rng.uniform(0.44, 0.56)) * S
    cx = centre - 0.5 * (x0 + x1) * height
    cx = min(max(cx, FRAME_MARGIN * S - x0 * height), S * (1 - FRAME_MARGIN) - x1 * height)
    return Placement(app, pose, mirror, S, (cx, oy), height, ground, lift)


def render(subject: str, action: str, context: str, seed: int = 0, size: int = 64) -> Image.Image:
    """One RGB image of ``subject`` doing ``action`` in ``context``; deterministic in all arguments.

    The seed fixes character (colours), scene layout, position, scale and mirroring; the
    pose jitter depends on (seed, action). Same seed, other action -> same character and scene.
    """
    return render_with_mask(subject, action, context, seed, size)[0]


def render_with_mask(subject: str, action: str, context: str, seed: int = 0,
                     size: int = 64) -> tuple[Image.Image, np.ndarray]:
    """:func:`render`'s image and the figure's silhouette: the character's coverage of each
    pixel (``size`` x ``size`` floats in [0, 1], the body layer's alpha area-averaged down),
    with the chair of a sit (drawn with the character), without the shadow or the background."""
    pl = placement(subject, action, context, seed, size)
    bg, _ = draw_background(context, pl.S, _rng("scene", seed, context))
    return compose(pl, bg, size)


def compose(pl: Placement, bg: Image.Image, size: int, dress=None) -> tuple[Image.Image, np.ndarray]:
    """Draw the placed character over the supersampled background ``bg``; downsample to ``size``.

    ``dress(body)``, if given, repaints the drawn RGBA body layer in place (v3's textured
    clothes) after mirroring, before it is composited. Returns the image and the silhouette."""
    S, (cx, oy), height, ground, lift = pl.S, pl.origin, pl.height, pl.ground, pl.lift
    layer = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    if lift:
        sh = ImageDraw.Draw(layer)
        sh.ellipse([cx - 0.12 * height, ground - 0.025 * height, cx + 0.12 * height, ground + 0.025 * height], fill=(0, 0, 0, 90))
    body = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    draw_character(body, pl.app["subject"], pl.app, pl.pose, (cx, oy), height)
    if pl.mirror:
        body = body.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        body = body.transform(body.size, Image.Transform.AFFINE, (1, 0, -pl.shift, 0, 1, 0))
    if dress is not None:
        body = dress(body)
    layer.alpha_composite(body)
    bg = bg.convert("RGBA")
    bg.alpha_composite(layer)
    mask = np.asarray(body.getchannel("A").resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return bg.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), mask


def render_grid(subjects=None, actions=None, context: str | None = None, seed: int = 0, size: int = 64, pad: int = 2) -> Image.Image:
    """A subjects x actions grid of renders (rows = subjects), contexts cycling if not given."""
    subjects = subjects or SUBJECTS
    actions = actions or ACTIONS
    grid = Image.new("RGB", (len(actions) * (size + pad) + pad, len(subjects) * (size + pad) + pad), (255, 255, 255))
    for i, s in enumerate(subjects):
        for k, a in enumerate(actions):
            ctx = context or CONTEXTS[(i + k) % len(CONTEXTS)]
            grid.paste(render(s, a, ctx, seed + i, size), (pad + k * (size + pad), pad + i * (size + pad)))
    return grid


def sample_triplets(n: int, rng: np.random.Generator) -> list[tuple[str, str, str, int]]:
    """``n`` random (subject, action, context, seed) tuples, uniform over the world."""
    return [(SUBJECTS[rng.integers(len(SUBJECTS))], ACTIONS[rng.integers(len(ACTIONS))],
             CONTEXTS[rng.integers(len(CONTEXTS))], int(rng.integers(2**31))) for _ in range(n)]
