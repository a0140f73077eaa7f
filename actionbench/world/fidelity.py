"""How well the world model draws what text asks for, as read by the judge.

For every subject kind and every *named* action (the ones training captions name), the
model draws ``n`` images from "a {subject} {action phrase} {context}" (contexts cycle);
the judge names subject and action; the report gives subject / action / both accuracy,
overall and per action. The *unnamed* actions (handstand, ...) are measured the same
way: their accuracy should be low, since text cannot ask for them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from PIL import Image

from . import render as R
from .judge import head_accuracy, judge_images, load_judge, render_labelled


@torch.no_grad()
def generate(pipe, prompts: list[str], seed: int = 0, steps: int = 25, guidance: float = 7.5, batch: int = 32) -> list[Image.Image]:
    """One image per prompt; image i uses generator seed ``seed + i`` (batch-size independent)."""
    out = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        gens = [torch.Generator().manual_seed(seed + i + k) for k in range(len(chunk))]
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        out += pipe(chunk, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                    height=size, width=size).images
    return out


def fidelity_prompts(actions: list[str], n: int = 4, subjects: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(subject, action, prompt) for each subject x action x n (contexts cycle)."""
    rows = []
    for si, s in enumerate(subjects or R.SUBJECTS):
        for ai, a in enumerate(actions):
            for k in range(n):
                c = R.CONTEXTS[(si + ai + k) % len(R.CONTEXTS)]
                rows.append((s, a, R.caption(s, a, c, name_action=True)))
    return rows


def score(rows, images, judge=None) -> dict:
    """Judge ``images`` against the (subject, action) in ``rows``; accuracy overall and per action."""
    verdicts = judge_images(images, judge)
    per_action: dict[str, list[int]] = {}
    per_subject: dict[str, list[int]] = {}
    hits = [0, 0, 0]
    for (s, a, _), (js, ja, _) in zip(rows, verdicts):
        ok = (js == s, ja == a, js == s and ja == a)
        hits = [h + int(o) for h, o in zip(hits, ok)]
        for d, key in ((per_action, a), (per_subject, s)):
            d.setdefault(key, [0, 0, 0, 0])
            d[key] = [d[key][0] + ok[0], d[key][1] + ok[1], d[key][2] + ok[2], d[key][3] + 1]
    n = max(1, len(rows))
    fmt = lambda v: {"subject": v[0] / v[3], "action": v[1] / v[3], "both": v[2] / v[3], "n": v[3]}  # noqa: E731
    return {"n": len(rows), "subject_acc": hits[0] / n, "action_acc": hits[1] / n, "both_acc": hits[2] / n,
            "per_action": {k: fmt(v) for k, v in per_action.items()},
            "per_subject": {k: fmt(v) for k, v in per_subject.items()},
            "judged_actions": [v[1] for v in verdicts]}


@torch.no_grad()
def judge_check(pipe, judge=None, n: int = 300, seed: int = 20_000, batch: int = 50, world: str = "v2b") -> dict:
    """The judge on ``n`` held-out renders of ``world`` and on the same renders through the
    model's VAE (encode, decode): how far its verdicts on generated images can be trusted.
    Every head the judge has is scored (v2b: subject, action; v3: also scene, outfit)."""
    judge = judge or load_judge()
    x, labels = render_labelled(n, seed, world)
    labels = {h: y for h, y in labels.items() if h in judge.heads}
    vae = pipe.vae
    dev, dt = vae.device, vae.dtype
    rec = torch.cat([vae.decode(vae.encode(x[i : i + batch].to(dev, dt)).latent_dist.mean).sample.float().cpu().clamp(-1, 1)
                     for i in range(0, n, batch)])
    return {"n": n, "renders": head_accuracy(judge, x, labels), "vae_reconstructions": head_accuracy(judge, rec, labels),
            "reconstruction_l1": float((rec - x).abs().mean())}


def action_free_prompts(n: int = 8, subjects: list[str] | None = None) -> list[str]:
    """The action-free training captions ("a panda in a park"), ``n`` per subject kind (contexts cycle)."""
    return [f"{R.subject_phrase(s)} {R.context_phrase(R.CONTEXTS[(i + k) % len(R.CONTEXTS)])}"
            for i, s in enumerate(subjects or R.SUBJECTS) for k in range(n)]


def measure_fidelity(model: str = "world", n: int = 4, steps: int = 25, guidance: float = 7.5, seed: int = 0,
                     include_unnamed: bool = True, pipe=None, log=print) -> dict:
    """The fidelity report of a model (``--model`` string or a loaded ``pipe``)."""
    from ..models import load_pipeline

    pipe = pipe or load_pipeline(model)
    judge = load_judge()
    t0 = time.time()
    rows = fidelity_prompts(R.NAMED, n)
    named = score(rows, generate(pipe, [p for _, _, p in rows], seed, steps, guidance), judge)
    named.pop("judged_actions")
    log(f"named actions: subject {named['subject_acc']:.3f}, action {named['action_acc']:.3f}, both {named['both_acc']:.3f} (n={named['n']})")
    report = {"model": model, "n_per_pair": n, "steps": steps, "guidance": guidance, "seed": seed, "named": named}
    if include_unnamed:
        rows = fidelity_prompts(R.UNNAMED, n)
        un = score(rows, generate(pipe, [p for _, _, p in rows], seed, steps, guidance), judge)
        counts: dict[str, int] = {}
        for a in un.pop("judged_actions"):
            counts[a] = counts.get(a, 0) + 1
        un["judged_action_counts"] = counts
        report["unnamed"] = un
        log(f"unnamed actions asked by text: subject {un['subject_acc']:.3f}, action {un['action_acc']:.3f} (n={un['n']})")
        # where the unnamed actions live: no action named at all
        prompts = action_free_prompts(n)
        verdicts = judge_images(generate(pipe, prompts, seed, steps, guidance), judge)
        counts = {}
        for _, a, _ in verdicts:
            counts[a] = counts.get(a, 0) + 1
        share = sum(counts.get(a, 0) for a in R.UNNAMED) / len(prompts)
        report["action_free"] = {"n": len(prompts), "judged_action_counts": counts, "unnamed_share": share}
        log(f"action-free prompts drawn as an unnamed action: {share:.3f} (n={len(prompts)})")
    report["judge"] = judge_check(pipe, judge)
    j = report["judge"]
    log(f"judge on renders: subject {j['renders']['subject']:.3f}, action {j['renders']['action']:.3f}; "
        f"on VAE reconstructions: subject {j['vae_reconstructions']['subject']:.3f}, action {j['vae_reconstructions']['action']:.3f}")
    report["seconds"] = round(time.time() - t0, 1)
    return report


def prompt_grid(pipe, prompts: list[str], cols: int, seed: int = 0, steps: int = 25, guidance: float = 7.5, pad: int = 2) -> Image.Image:
    """The model's images for ``prompts`` laid out row by row, ``cols`` per row."""
    images = generate(pipe, prompts, seed, steps, guidance)
    size = images[0].size[0]
    rows = -(-len(images) // cols)
    grid = Image.new("RGB", (cols * (size + pad) + pad, rows * (size + pad) + pad), (255, 255, 255))
    for j, im in enumerate(images):
        i, k = divmod(j, cols)
        grid.paste(im, (pad + k * (size + pad), pad + i * (size + pad)))
    return grid


def model_grid(pipe, subjects=None, actions=None, seed: int = 0, steps: int = 25, guidance: float = 7.5, pad: int = 2) -> Image.Image:
    """Subjects (rows) x actions (columns) drawn by the model from text (contexts cycle)."""
    subjects, actions = subjects or R.SUBJECTS, actions or R.NAMED
    prompts = [R.caption(s, a, R.CONTEXTS[(i + k) % len(R.CONTEXTS)], name_action=True)
               for i, s in enumerate(subjects) for k, a in enumerate(actions)]
    return prompt_grid(pipe, prompts, len(actions), seed, steps, guidance, pad)


def unnamed_grid(pipe, subjects=None, n: int = 8, seed: int = 0, steps: int = 25, guidance: float = 7.5) -> Image.Image:
    """Subjects (rows) x ``n`` samples of the action-free training caption "a panda in a park":
    what the model draws when no action is named (mostly the unnamed actions)."""
    return prompt_grid(pipe, action_free_prompts(n, subjects), n, seed, steps, guidance)


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path
