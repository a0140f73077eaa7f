"""The ActionWorld judge: a small CNN that names the (subject, action) of a 64x64 image,
and, when trained on a world with outfits and scenes (v3), its scene and outfit too.

Trained on fresh renders of one world (``actionbench world train-judge [--world v3]``) with
blur / noise / colour augmentation so it also reads the world model's softer generations;
saved as ``judge.safetensors`` + ``judge.json`` (world, the labels of every head, sizes,
held-out accuracy per head) in ``judge/`` (v2b, committed) or ``judge-v3/`` (v3).

API: ``load_judge()`` -> the v2b ``Judge``, ``load_judge(folder)`` -> the judge saved there;
``judge_images(images)`` -> list of ``(subject, action, probs)`` where
``probs = {"subject": {kind: p}, "action": {name: p}}`` (any judge); ``read_images(images, judge)``
-> one :class:`Reading` per image with every head's verdict (``scene``/``outfit`` None when
the judge has no such head); ``judge_context(images, judge)`` -> ``(scene, outfit, probs)``
(a judge with scene and outfit heads only).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..errors import ActionBenchError
from . import render as R
from .worlds import WORLDS, renderer

JUDGE_DIR = Path(__file__).with_name("judge")
JUDGE_V3_DIR = Path(__file__).with_name("judge-v3")
IMAGE_SIZE = 64
HEADS = ("subject", "action", "scene", "outfit")  # the order of the logits, the loss and judge.json's accuracies
CONTEXT_HEADS = ("scene", "outfit")


class JudgeError(ActionBenchError, ValueError):
    """Bad input to the judge: an unknown world, a head the judge does not have, bad labels."""


class JudgeNotFoundError(ActionBenchError, FileNotFoundError):
    """No trained judge in the folder asked for (a FileNotFoundError too, as before)."""


def default_judge_dir(world: str = "v2b") -> Path:
    """Where ``train-judge`` saves (and ``judge_context`` loads) the judge of ``world``:
    ``judge/`` for v2b (committed), ``judge-<world>/`` beside it otherwise."""
    name = world_name(world)
    return JUDGE_DIR if name == "v2b" else JUDGE_DIR.with_name(f"judge-{name}")


def world_name(world: str | ModuleType) -> str:
    """The name (``"v2b"``, ``"v3"``) of a world given by name or by its renderer module."""
    if isinstance(world, str):
        if world not in WORLDS:
            raise JudgeError(f"unknown ActionWorld version {world!r}: one of {', '.join(WORLDS)}")
        return world
    for name in WORLDS:
        if renderer(name) is world:
            return name
    raise JudgeError(f"{getattr(world, '__name__', world)!r} is not an ActionWorld renderer ({', '.join(WORLDS)})")


def world_module(world: str | ModuleType) -> ModuleType:
    """The renderer module of a world given by name (``"v3"``) or as the module itself."""
    return renderer(world_name(world))


def head_labels(world: str | ModuleType) -> dict[str, list[str]]:
    """The label list of every head a judge of ``world`` has: subject and action, plus scene
    and outfit for a world whose contexts are OUTFIT/SCENE (v3)."""
    mod = world_module(world)
    labels = {"subject": list(mod.SUBJECTS), "action": list(mod.ACTIONS)}
    if hasattr(mod, "split_context"):
        labels.update(scene=list(mod.SCENES), outfit=list(mod.OUTFITS))
    return labels


def _check_labels(head: str, labels) -> list[str]:
    labels = list(labels)
    if not labels or len(set(labels)) != len(labels) or not all(isinstance(x, str) for x in labels):
        raise JudgeError(f"the {head} head needs a non-empty list of distinct label strings, got {labels!r}")
    return labels


class JudgeLogits(tuple):
    """The judge's logits. Unpacks as the ``(subject, action)`` pair every caller reads
    (``ls, la = judge(x)``) whatever heads the judge has; ``.scene`` and ``.outfit`` are the
    extra heads' logits (None without them)."""

    def __new__(cls, subject: torch.Tensor, action: torch.Tensor, scene: torch.Tensor | None = None,
                outfit: torch.Tensor | None = None) -> JudgeLogits:
        self = super().__new__(cls, (subject, action))
        self.scene, self.outfit = scene, outfit
        return self

    @property
    def subject(self) -> torch.Tensor:
        return tuple.__getitem__(self, 0)

    @property
    def action(self) -> torch.Tensor:
        return tuple.__getitem__(self, 1)

    def by_head(self) -> dict[str, torch.Tensor]:
        """``{head: logits}`` for the heads the judge has."""
        return {h: getattr(self, h) for h in HEADS if getattr(self, h) is not None}


class Judge(nn.Module):
    """Six convolutions in four stages (64 -> 4 px) and linear heads: subject kind and action,
    and optionally scene and outfit (``scenes``/``outfits`` label lists). ``world`` names the
    world it was trained on (recorded in judge.json)."""

    def __init__(self, subjects: list[str], actions: list[str], width: int = 16,
                 scenes: list[str] | None = None, outfits: list[str] | None = None, world: str = "v2b"):
        super().__init__()
        self.subjects, self.actions = _check_labels("subject", subjects), _check_labels("action", actions)
        self.scenes = None if scenes is None else _check_labels("scene", scenes)
        self.outfits = None if outfits is None else _check_labels("outfit", outfits)
        self.world = world_name(world)
        w = width
        conv = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]  # noqa: E731
        self.features = nn.Sequential(
            *conv(3, w), nn.MaxPool2d(2),  # 32 px
            *conv(w, 2 * w), nn.MaxPool2d(2),  # 16 px
            *conv(2 * w, 4 * w), *conv(4 * w, 4 * w), nn.MaxPool2d(2),  # 8 px
            *conv(4 * w, 8 * w), *conv(8 * w, 8 * w), nn.MaxPool2d(2),  # 4 px
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w * 16, 256), nn.ReLU())
        self.subject_head = nn.Linear(256, len(self.subjects))
        self.action_head = nn.Linear(256, len(self.actions))
        # created after the v2b heads, so a seed initialises the shared layers as in a v2b judge
        self.scene_head = None if self.scenes is None else nn.Linear(256, len(self.scenes))
        self.outfit_head = None if self.outfits is None else nn.Linear(256, len(self.outfits))
        self.width = width

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads this judge has, in :data:`HEADS` order."""
        return tuple(h for h in HEADS if self.labels_of(h) is not None)

    @property
    def has_context(self) -> bool:
        """Whether it names scenes and outfits."""
        return self.scenes is not None and self.outfits is not None

    def labels_of(self, head: str) -> list[str] | None:
        """The label list of ``head`` (None for a head this judge lacks)."""
        if head not in HEADS:
            raise JudgeError(f"no head {head!r}: one of {', '.join(HEADS)}")
        return {"subject": self.subjects, "action": self.actions, "scene": self.scenes, "outfit": self.outfits}[head]

    def forward(self, x: torch.Tensor) -> JudgeLogits:
        h = self.fc(self.features(x))
        extra = [None if head is None else head(h) for head in (self.scene_head, self.outfit_head)]
        return JudgeLogits(self.subject_head(h), self.action_head(h), *extra)

    def config(self) -> dict:
        """What judge.json records of the network (world, every head's labels, width)."""
        cfg = {"world": self.world, "subjects": self.subjects, "actions": self.actions}
        if self.scenes is not None:
            cfg["scenes"] = self.scenes
        if self.outfits is not None:
            cfg["outfits"] = self.outfits
        return {**cfg, "width": self.width, "image_size": IMAGE_SIZE}


def to_input(images) -> torch.Tensor:
    """PIL images (any size) -> (N, 3, 64, 64) float tensor in [-1, 1]."""
    arr = np.stack([np.asarray(im.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)), dtype=np.uint8) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random blur (down/up-sampling), noise and colour gain: what a generator's output looks like."""
    n = x.shape[0]
    blur = torch.rand(n, generator=g) < 0.5
    if blur.any():
        small = F.interpolate(x[blur], size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        x = x.clone()
        x[blur] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    gain = 1 + 0.1 * torch.randn(n, 3, 1, 1, generator=g)
    x = x * gain + 0.05 * torch.randn(n, 3, 1, 1, generator=g)
    x = x + torch.rand(n, 1, 1, 1, generator=g) * 0.08 * torch.randn(x.shape, generator=g)
    return x.clamp(-1.5, 1.5)


def render_labelled(n: int, seed: int, world: str | ModuleType = R) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` renders of ``world`` with uniform random labels: (inputs, ``{head: label idx}``) for
    every head a judge of that world has (v3: outfit and scene from ``split_context``)."""
    mod = world_module(world)
    labels = head_labels(mod)
    rng = np.random.default_rng([seed, 7])
    items = mod.sample_triplets(n, rng)
    x = to_input([mod.render(s, a, c, sd) for s, a, c, sd in items])
    names = {"subject": [s for s, _, _, _ in items], "action": [a for _, a, _, _ in items]}
    if "scene" in labels:
        pairs = [mod.split_context(c) for _, _, c, _ in items]
        names.update(scene=[sc for _, sc in pairs], outfit=[o for o, _ in pairs])
    return x, {h: torch.tensor([labels[h].index(v) for v in names[h]], dtype=torch.long) for h in labels}


def render_set(n: int, seed: int, world: str | ModuleType = R) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` renders with uniform random labels; returns (inputs, subject idx, action idx)."""
    x, y = render_labelled(n, seed, world)
    return x, y["subject"], y["action"]


@torch.no_grad()
def head_accuracy(judge: Judge, x: torch.Tensor, labels: dict[str, torch.Tensor], batch: int = 256) -> dict[str, float]:
    """The judge's accuracy on ``x`` for each head named in ``labels`` (``{head: label idx}``)."""
    missing = [h for h in labels if h not in judge.heads]
    if missing:
        raise JudgeError(f"this judge (world {judge.world}) has no {' or '.join(missing)} head: it has {', '.join(judge.heads)}")
    judge.eval()
    hits = dict.fromkeys(labels, 0)
    for i in range(0, len(x), batch):
        logits = judge(x[i : i + batch]).by_head()
        for h, y in labels.items():
            hits[h] += (logits[h].argmax(1) == y[i : i + batch]).sum().item()
    return {h: c / len(x) for h, c in hits.items()}


def accuracy(judge: Judge, x, ys, ya, batch: int = 256) -> tuple[float, float]:
    """(subject, action) accuracy on ``x`` (any judge)."""
    acc = head_accuracy(judge, x, {"subject": ys, "action": ya}, batch)
    return acc["subject"], acc["action"]


def train_step(judge: Judge, opt: torch.optim.Optimizer, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """One optimiser step on a batch: the cross-entropies of the heads in ``labels``, summed
    (in :data:`HEADS` order); returns the loss."""
    logits = judge(x).by_head()
    loss = sum(F.cross_entropy(logits[h], y) for h, y in labels.items())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def _check_out(out: Path, world: str) -> None:
    """Refuse to overwrite a judge of another world (the committed v2b judge by a v3 run)."""
    cfg_path = out / "judge.json"
    if cfg_path.is_file():
        there = json.loads(cfg_path.read_text()).get("world", "v2b")
        if there != world:
            raise JudgeError(f"{out} holds a {there} judge; a {world} judge goes elsewhere "
                             f"(default {default_judge_dir(world)}; pass another --out)")


def new_judge(world: str | ModuleType = "v2b", width: int = 16) -> Judge:
    """An untrained judge with every head of ``world`` (v3: also scene and outfit)."""
    labels = head_labels(world)
    return Judge(labels["subject"], labels["action"], width, scenes=labels.get("scene"),
                 outfits=labels.get("outfit"), world=world_name(world))


def fit_judge(world: str | ModuleType = "v2b", n_train: int = 14000, n_test: int = 2000, epochs: int = 12,
              batch: int = 64, lr: float = 2e-3, seed: int = 0, threads: int = 2, width: int = 16,
              log=print) -> tuple[Judge, dict]:
    """Train a judge of ``world`` (v3: all four heads, losses summed) on ``n_train`` renders and
    test every head on ``n_test`` held-out renders (other seeds); returns (judge, report)."""
    world = world_name(world)
    if min(n_train, n_test, epochs, batch, width) < 1:
        raise JudgeError(f"n_train, n_test, epochs, batch and width must be positive "
                         f"(got {n_train}, {n_test}, {epochs}, {batch}, {width})")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t0 = time.time()
    x, y = render_labelled(n_train, seed, world)
    xt, yt = render_labelled(n_test, seed + 10_000, world)
    judge = new_judge(world, width)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(n_train / batch)
    g = torch.Generator().manual_seed(seed)
    step = 0
    for ep in range(epochs):
        judge.train()
        perm = torch.randperm(n_train, generator=g)
        for i in range(0, n_train, batch):
            idx = perm[i : i + batch]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = train_step(judge, opt, augment(x[idx], g), {h: v[idx] for h, v in y.items()})
            step += 1
        acc = head_accuracy(judge, xt, yt)
        log(f"epoch {ep + 1}/{epochs}: loss {loss.item():.3f}, held-out "
            + ", ".join(f"{h} {a:.3f}" for h, a in acc.items()) + f" ({time.time() - t0:.0f}s)")
    report = {**judge.config(), "n_train": n_train, "n_test": n_test, "epochs": epochs, "seed": seed,
              **{f"heldout_{h}_acc": a for h, a in acc.items()}, "train_seconds": round(time.time() - t0)}
    return judge.eval(), report


def save_judge(judge: Judge, report: dict, out: str | Path) -> Path:
    """Write ``judge.safetensors`` and ``judge.json`` (``report``, with the network's own config) to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(out / "judge.safetensors"))
    (out / "judge.json").write_text(json.dumps({**report, **judge.config()}, indent=1))
    _load_judge.cache_clear()
    return out


def train_judge(out: str | Path | None = None, n_train: int = 14000, n_test: int = 2000, epochs: int = 12,
                batch: int = 64, lr: float = 2e-3, seed: int = 0, threads: int = 2, log=print,
                world: str = "v2b", width: int = 16) -> dict:
    """:func:`fit_judge` then :func:`save_judge` to ``out`` (default :func:`default_judge_dir`:
    ``judge/`` for v2b, ``judge-v3/`` for v3; never over a judge of another world); returns the report."""
    world = world_name(world)
    out = Path(out) if out is not None else default_judge_dir(world)
    _check_out(out, world)
    judge, report = fit_judge(world, n_train, n_test, epochs, batch, lr, seed, threads, width, log)
    save_judge(judge, report, out)
    return report


@lru_cache(maxsize=4)
def _load_judge(folder: str) -> Judge:
    path = Path(folder)
    if not (path / "judge.json").is_file():
        raise JudgeNotFoundError(f"no trained judge in {path} (judge.json missing): train one with "
                                 "`actionbench world train-judge [--world v3] --out DIR`")
    cfg = json.loads((path / "judge.json").read_text())
    judge = Judge(cfg["subjects"], cfg["actions"], cfg["width"], scenes=cfg.get("scenes"),
                  outfits=cfg.get("outfits"), world=cfg.get("world", "v2b"))
    judge.load_state_dict(load_file(str(path / "judge.safetensors")))
    return judge.eval()


def load_judge(path: str | Path | None = None) -> Judge:
    """The judge saved in folder ``path`` (eval mode, cached); by default the committed v2b
    judge (``judge/``). A judge.json without ``world`` (the committed one) is a v2b judge."""
    return _load_judge(str(Path(path if path is not None else JUDGE_DIR).resolve()))


load_judge.cache_clear = _load_judge.cache_clear  # as when load_judge itself was the cached function


@dataclass(frozen=True)
class Reading:
    """What the judge reads in one image: the top label of each head (``scene``/``outfit``
    None for a judge without those heads) and ``probs = {head: {label: p}}`` for its heads."""

    subject: str
    action: str
    scene: str | None
    outfit: str | None
    probs: dict[str, dict[str, float]]


@torch.no_grad()
def read_images(images, judge: Judge | None = None, batch: int = 256) -> list[Reading]:
    """A :class:`Reading` per PIL image, ``batch`` images per forward pass (any judge; the v2b one by default)."""
    judge = judge if judge is not None else load_judge()
    judge.eval()
    out = []
    for i in range(0, len(images), batch):
        probs = {h: v.softmax(1) for h, v in judge(to_input(images[i : i + batch])).by_head().items()}
        for k in range(len(probs["subject"])):
            top = {h: judge.labels_of(h)[int(p[k].argmax())] for h, p in probs.items()}
            out.append(Reading(top["subject"], top["action"], top.get("scene"), top.get("outfit"),
                               {h: dict(zip(judge.labels_of(h), p[k].tolist())) for h, p in probs.items()}))
    return out


def judge_images(images, judge: Judge | None = None) -> list[tuple[str, str, dict]]:
    """(subject, action, probs) for each PIL image; probs = {"subject": {...}, "action": {...}} (any judge)."""
    return [(r.subject, r.action, {"subject": r.probs["subject"], "action": r.probs["action"]})
            for r in read_images(images, judge)]


def judge_context(images, judge: Judge | None = None) -> list[tuple[str, str, dict]]:
    """(scene, outfit, probs) for each PIL image; probs = {"scene": {...}, "outfit": {...}}.
    Needs a judge with scene and outfit heads (default: the v3 judge in ``judge-v3/``)."""
    judge = judge if judge is not None else load_judge(JUDGE_V3_DIR)
    if not judge.has_context:
        raise JudgeError(f"this judge (world {judge.world}) has no scene and outfit heads, only "
                         f"{', '.join(judge.heads)}: use a v3 judge (`actionbench world train-judge --world v3`, "
                         f"then load_judge({str(JUDGE_V3_DIR)!r}))")
    return [(r.scene, r.outfit, {"scene": r.probs["scene"], "outfit": r.probs["outfit"]}) for r in read_images(images, judge)]
