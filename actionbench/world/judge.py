"""The ActionWorld judge: a small CNN that names the (subject, action) of a 64x64 image.

Trained on fresh renders (``actionbench world train-judge``) with blur / noise / colour
augmentation so it also reads the world model's softer generations; saved as
``judge/judge.safetensors`` + ``judge/judge.json`` (labels, sizes, held-out accuracy).

API: ``load_judge()`` -> ``Judge``; ``judge_images(images)`` -> list of
``(subject, action, probs)`` where ``probs = {"subject": {kind: p}, "action": {name: p}}``.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from . import render as R

JUDGE_DIR = Path(__file__).with_name("judge")
IMAGE_SIZE = 64


class Judge(nn.Module):
    """Six convolutions in four stages (64 -> 4 px) and two linear heads: subject kind and action."""

    def __init__(self, subjects: list[str], actions: list[str], width: int = 16):
        super().__init__()
        self.subjects, self.actions = list(subjects), list(actions)
        w = width
        conv = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]  # noqa: E731
        self.features = nn.Sequential(
            *conv(3, w), nn.MaxPool2d(2),  # 32 px
            *conv(w, 2 * w), nn.MaxPool2d(2),  # 16 px
            *conv(2 * w, 4 * w), *conv(4 * w, 4 * w), nn.MaxPool2d(2),  # 8 px
            *conv(4 * w, 8 * w), *conv(8 * w, 8 * w), nn.MaxPool2d(2),  # 4 px
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w * 16, 256), nn.ReLU())
        self.subject_head = nn.Linear(256, len(subjects))
        self.action_head = nn.Linear(256, len(actions))
        self.width = width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.features(x))
        return self.subject_head(h), self.action_head(h)


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


def render_set(n: int, seed: int):
    """``n`` renders with uniform random labels; returns (inputs, subject idx, action idx)."""
    rng = np.random.default_rng([seed, 7])
    items = R.sample_triplets(n, rng)
    x = to_input([R.render(s, a, c, sd) for s, a, c, sd in items])
    ys = torch.tensor([R.SUBJECTS.index(s) for s, _, _, _ in items])
    ya = torch.tensor([R.ACTIONS.index(a) for _, a, _, _ in items])
    return x, ys, ya


@torch.no_grad()
def accuracy(judge: Judge, x, ys, ya, batch: int = 256) -> tuple[float, float]:
    judge.eval()
    cs = ca = 0
    for i in range(0, len(x), batch):
        ls, la = judge(x[i : i + batch])
        cs += (ls.argmax(1) == ys[i : i + batch]).sum().item()
        ca += (la.argmax(1) == ya[i : i + batch]).sum().item()
    return cs / len(x), ca / len(x)


def train_judge(out: str | Path = JUDGE_DIR, n_train: int = 14000, n_test: int = 2000, epochs: int = 12,
                batch: int = 64, lr: float = 2e-3, seed: int = 0, threads: int = 2, log=print) -> dict:
    """Train on ``n_train`` renders, test on ``n_test`` held-out renders (other seeds); save and return the report."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t0 = time.time()
    x, ys, ya = render_set(n_train, seed)
    xt, yts, yta = render_set(n_test, seed + 10_000)
    judge = Judge(R.SUBJECTS, R.ACTIONS)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(n_train / batch)
    g = torch.Generator().manual_seed(seed)
    step = 0
    for ep in range(epochs):
        judge.train()
        perm = torch.randperm(n_train, generator=g)
        for i in range(0, n_train, batch):
            idx = perm[i : i + batch]
            ls, la = judge(augment(x[idx], g))
            loss = F.cross_entropy(ls, ys[idx]) + F.cross_entropy(la, ya[idx])
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        acc_s, acc_a = accuracy(judge, xt, yts, yta)
        log(f"epoch {ep + 1}/{epochs}: loss {loss.item():.3f}, held-out subject {acc_s:.3f}, action {acc_a:.3f} ({time.time() - t0:.0f}s)")
    report = {"subjects": R.SUBJECTS, "actions": R.ACTIONS, "width": judge.width, "image_size": IMAGE_SIZE,
              "n_train": n_train, "n_test": n_test, "epochs": epochs, "seed": seed,
              "heldout_subject_acc": acc_s, "heldout_action_acc": acc_a, "train_seconds": round(time.time() - t0)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(out / "judge.safetensors"))
    (out / "judge.json").write_text(json.dumps(report, indent=1))
    load_judge.cache_clear()
    return report


@lru_cache(maxsize=2)
def load_judge(path: str | Path = JUDGE_DIR) -> Judge:
    """The committed judge (eval mode)."""
    path = Path(path)
    cfg = json.loads((path / "judge.json").read_text())
    judge = Judge(cfg["subjects"], cfg["actions"], cfg["width"])
    judge.load_state_dict(load_file(str(path / "judge.safetensors")))
    return judge.eval()


@torch.no_grad()
def judge_images(images, judge: Judge | None = None) -> list[tuple[str, str, dict]]:
    """(subject, action, probs) for each PIL image; probs = {"subject": {...}, "action": {...}}."""
    judge = judge or load_judge()
    judge.eval()
    out = []
    for i in range(0, len(images), 256):
        ls, la = judge(to_input(images[i : i + 256]))
        ps, pa = ls.softmax(1), la.softmax(1)
        for s, a in zip(ps, pa):
            out.append((judge.subjects[int(s.argmax())], judge.actions[int(a.argmax())],
                        {"subject": dict(zip(judge.subjects, s.tolist())), "action": dict(zip(judge.actions, a.tolist()))}))
    return out
