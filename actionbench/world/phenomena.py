"""What makes action customization hard, measured on a world model (issue #23).

A world can only test the paper's claims if it holds the task's difficulties before any
method is judged on it. This module measures them on one model, so that v2b and a later
world are compared on the same numbers (``phenomena.json``):

- ``token_width``: the text encoder's embedding width (SD 2.1-base: 1,024).
- ``text_action_acc`` (per benchmark action, percent): how often the judge sees the action
  when text asks for it by its phrase ("a panda salutes in a park"), from the model's
  fidelity report; ``action_free_rate``: how often an action-free prompt ("a panda in a
  park") is drawn as that action. Where the first is far above the second, text can name
  the action and a learner is not needed to draw it.
- ``figure_loss_share``: the share of the denoising loss (epsilon MSE, what the
  customization methods minimise, at uniform timesteps) that falls inside the figure's
  silhouette, beside the silhouette's share of the area. A pixel learner fits what the loss
  weighs; when the figure carries most of it, the pose comes for free.
- ``fidelity`` and ``judge``: the fidelity report's text-prompt accuracies and the judge
  on renders and through the VAE.

Not measurable on v2b (the judge has no scene or clothing heads and the exemplars share no
context): ``fidelity.scene``, ``fidelity.clothing`` and ``context_leakage`` are null there.

    actionbench world phenomena --model world --out results/world-v2b/phenomena.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import render as R

BENCHMARK_ACTIONS = tuple(R.ACTIONBENCH)


def token_width(pipe) -> int:
    return int(pipe.text_encoder.config.hidden_size)


def text_action_rates(fidelity: dict) -> tuple[dict[str, float], dict[str, float]]:
    """(``text_action_acc``, ``action_free_rate``) per benchmark action, percent, from a
    fidelity report (:func:`actionbench.world.fidelity.measure_fidelity` with unnamed actions)."""
    per_action = per_action_of(fidelity)
    free = fidelity.get("action_free")
    if free is None:
        raise ValueError("the fidelity report has no action-free prompts (measure it with include_unnamed=True)")
    missing = [a for a in BENCHMARK_ACTIONS if a not in per_action]
    if missing:
        raise ValueError(f"the fidelity report has no text-prompt images of {', '.join(missing)}")
    text = {a: round(100 * per_action[a]["action"], 1) for a in BENCHMARK_ACTIONS}
    counts, n = free["judged_action_counts"], free["n"]
    return text, {a: round(100 * counts.get(a, 0) / n, 1) for a in BENCHMARK_ACTIONS}


def per_action_of(fidelity: dict) -> dict[str, dict]:
    return {**fidelity["named"]["per_action"], **fidelity.get("unnamed", {}).get("per_action", {})}


def loss_share(err: np.ndarray, mask: np.ndarray) -> float:
    """Share of the summed loss ``err`` (N, h, w) that falls inside ``mask`` (N, h, w, in [0, 1])."""
    total = float(err.sum())
    return float((err * mask).sum()) / total if total > 0 else float("nan")


def share_ci(inside: np.ndarray, total: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> tuple[float, float]:
    """95% percentile-bootstrap interval (over images) of ``inside.sum() / total.sum()``;
    (nan, nan) when ``n_boot`` is 0."""
    if not n_boot:
        return float("nan"), float("nan")
    n = len(total)
    draws = [inside[idx].sum() / total[idx].sum() for idx in (rng.integers(0, n, n) for _ in range(n_boot))]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def high_pass_energy(image) -> np.ndarray:
    """Per-pixel energy of an image's fine detail: the squared difference from its 5x5 box
    mean, summed over channels (what a 64 px reconstruction must spend capacity on)."""
    from PIL import ImageFilter

    x = np.asarray(image, np.float32) / 255.0
    blur = np.asarray(image.filter(ImageFilter.BoxBlur(2)), np.float32) / 255.0
    return ((x - blur) ** 2).sum(-1)


def pixel_detail_share(world=R, n: int = 512, seed: int = 0) -> dict:
    """A model-free check of a world's design, before any model is trained on it: the share
    of the renders' fine-detail energy (:func:`high_pass_energy`) inside the figure's
    silhouette, beside the silhouette's share of the area, on ``n`` random renders of
    ``world`` (a renderer module: :mod:`.render` for v2b, :mod:`.render_v3`). Not the
    denoising loss (:func:`figure_loss` needs the world's model); a proxy that moves with it."""
    items = world.sample_triplets(n, np.random.default_rng([seed, 25]))
    e_in, e_all, area = np.zeros(n), np.zeros(n), np.zeros(n)
    for i, (s, a, c, sd) in enumerate(items):
        im, mask = world.render_with_mask(s, a, c, sd)
        e = high_pass_energy(im)
        e_in[i], e_all[i], area[i] = (e * mask).sum(), e.sum(), mask.mean()
    low, high = share_ci(e_in, e_all, np.random.default_rng([seed, 26]))
    return {"share": round(100 * e_in.sum() / e_all.sum(), 1), "share_ci": [round(100 * low, 1), round(100 * high, 1)],
            "area": round(100 * area.mean(), 1), "n": n}


@torch.no_grad()
def figure_loss(pipe, n: int = 256, seed: int = 0, batch: int = 32, bootstrap: int = 1000, world=R) -> dict:
    """The denoising loss inside the figure's silhouette on ``n`` random training renders
    (their training captions, timesteps uniform over training's, one noise draw each):
    ``share`` of the loss with a 95% bootstrap interval over images, and ``area``, the
    silhouette's share of the pixels (at the latent's resolution)."""
    from .judge import to_input
    from .train import tokenize

    R = world  # noqa: N806  (the world's renderer module)
    rng = np.random.default_rng([seed, 23])
    items = R.sample_triplets(n, rng)
    g = torch.Generator().manual_seed(seed)
    vae, unet, sched = pipe.vae, pipe.unet, pipe.scheduler
    dev, dt = unet.device, unet.dtype
    errs, masks = [], []
    for i in range(0, n, batch):
        chunk = items[i : i + batch]
        pairs = [R.render_with_mask(s, a, c, sd) for s, a, c, sd in chunk]
        x = to_input([im for im, _ in pairs]).to(dev, vae.dtype)
        z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        m = torch.from_numpy(np.stack([mk for _, mk in pairs]))[:, None]
        m = F.adaptive_avg_pool2d(m, z.shape[-2:])[:, 0]
        t = torch.randint(0, sched.config.num_train_timesteps, (len(chunk),), generator=g)
        noise = torch.randn(z.shape, generator=g)
        zt = sched.add_noise(z.float().cpu(), noise, t)
        ids = tokenize(pipe.tokenizer, [R.caption(s, a, c) for s, a, c, _ in chunk]).to(dev)
        hidden = pipe.text_encoder(ids)[0]
        pred = unet(zt.to(dev, dt), t.to(dev), hidden.to(dt)).sample.float().cpu()
        errs.append((pred - noise).pow(2).sum(1).numpy())
        masks.append(m.numpy())
    err, mask = np.concatenate(errs), np.concatenate(masks)
    share = loss_share(err, mask)
    per_in, per_all = (err * mask).sum((1, 2)), err.sum((1, 2))
    low, high = share_ci(per_in, per_all, np.random.default_rng([seed, 24]), bootstrap)
    return {"share": round(100 * share, 1), "share_ci": [round(100 * float(low), 1), round(100 * float(high), 1)],
            "area": round(100 * float(mask.mean()), 1), "n": n, "latent_size": list(err.shape[1:])}


def measure(pipe, fidelity: dict, name: str, n: int = 256, seed: int = 0, log=print, world=R) -> dict:
    """``phenomena.json`` of one world model, ``name`` its label (``v2b``, ``v3``); ``world`` the
    renderer module its figure-loss renders come from (v3: :mod:`.render_v3`)."""
    t0 = time.process_time()
    text, free = text_action_rates(fidelity)
    for a in BENCHMARK_ACTIONS:
        flag = "  (text names it: > action-free + 10)" if text[a] > free[a] + 10 else ""
        log(f"{a:10s} text prompt {text[a]:5.1f}%   action-free prompts drawn as it {free[a]:5.1f}%{flag}")
    loss = figure_loss(pipe, n=n, seed=seed, world=world)
    log(f"figure's share of the denoising loss {loss['share']}% {loss['share_ci']} (its share of the area {loss['area']}%)")
    named = fidelity["named"]
    judge = fidelity["judge"]
    return {
        "world": name,
        "token_width": token_width(pipe),
        "text_action_acc": text,
        "action_free_rate": free,
        "action_free_n": fidelity["action_free"]["n"],
        "text_prompt_n": {a: per_action_of(fidelity)[a]["n"] for a in BENCHMARK_ACTIONS},
        "benchmark_actions_text_can_name": [a for a in BENCHMARK_ACTIONS if text[a] > free[a] + 10],
        "figure_loss_share": {name: loss},
        "fidelity": {"subject": round(100 * named["subject_acc"], 1), "scene": _pct(named.get("scene_acc")),
                     "clothing": _pct(named.get("clothing_acc")),
                     "named_action": round(100 * named["action_acc"], 1)},
        "judge": {"renders": {k: round(100 * v, 1) for k, v in judge["renders"].items()},
                  "through_vae": {k: round(100 * v, 1) for k, v in judge["vae_reconstructions"].items()}},
        "context_leakage": None,
        "cpu_seconds": round(time.process_time() - t0, 1),
    }


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100 * v, 1)


def write(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path
