"""How well the world model draws what text asks for, as read by the judge.

For every subject kind and every *named* action (the ones training captions name), the
model draws ``n`` images from "a {subject} {action phrase} {context}" (contexts cycle);
the judge names subject and action; the report gives subject / action / both accuracy,
overall and per action. The *unnamed* actions (handstand, ...) are measured the same
way: their accuracy should be low, since text cannot ask for them.

``world="v3"``: v3's prompts ("a panda waves in a red striped shirt in a park"; contexts
cycle through all 48 outfit/scene pairs), read by the v3 judge, which also names the scene
and the outfit: the report adds scene and clothing accuracy (issue #23 item 5).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from PIL import Image

from .judge import default_judge_dir, head_accuracy, judge_images, load_judge, read_images, render_labelled
from .worlds import renderer


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


def _v3_contexts(n: int) -> list[str]:
    """``n`` v3 prompt contexts through all 48 (v2b's prompts keep their archived per-row cycle)."""
    return renderer("v3").evaluation_contexts(None, n)


def fidelity_prompts(actions: list[str], n: int = 4, subjects: list[str] | None = None,
                     world: str = "v2b") -> list[tuple[str, ...]]:
    """(subject, action, prompt) for each subject x action x n (contexts cycle); v3 rows add
    the context asked for (``OUTFIT/SCENE``)."""
    W = renderer(world)  # noqa: N806
    subjects = subjects or W.SUBJECTS
    ctx = _v3_contexts(len(subjects) * len(actions) * n) if world == "v3" else None
    rows = []
    for si, s in enumerate(subjects):
        for ai, a in enumerate(actions):
            for k in range(n):
                if world == "v3":
                    c = ctx[len(rows)]
                    rows.append((s, a, W.caption(s, a, c, name_action=True), c))
                else:
                    c = W.CONTEXTS[(si + ai + k) % len(W.CONTEXTS)]
                    rows.append((s, a, W.caption(s, a, c, name_action=True)))
    return rows


def score(rows, images, judge=None) -> dict:
    """Judge ``images`` against the (subject, action) in ``rows``; accuracy overall and per action.
    Rows with a fourth field (a v3 context ``OUTFIT/SCENE``), read by a judge with scene and
    outfit heads, also score ``scene_acc`` and ``clothing_acc``."""
    from .render_v3 import split_context

    readings = read_images(images, judge)
    per_action: dict[str, list[int]] = {}
    per_subject: dict[str, list[int]] = {}
    hits = [0, 0, 0]
    ctx_hits, n_ctx = [0, 0], 0
    for row, r in zip(rows, readings):
        s, a = row[0], row[1]
        ok = (r.subject == s, r.action == a, r.subject == s and r.action == a)
        hits = [h + int(o) for h, o in zip(hits, ok)]
        for d, key in ((per_action, a), (per_subject, s)):
            d.setdefault(key, [0, 0, 0, 0])
            d[key] = [d[key][0] + ok[0], d[key][1] + ok[1], d[key][2] + ok[2], d[key][3] + 1]
        if len(row) > 3 and r.scene is not None:
            outfit, scene = split_context(row[3])
            ctx_hits = [ctx_hits[0] + (r.scene == scene), ctx_hits[1] + (r.outfit == outfit)]
            n_ctx += 1
    n = max(1, len(rows))
    fmt = lambda v: {"subject": v[0] / v[3], "action": v[1] / v[3], "both": v[2] / v[3], "n": v[3]}  # noqa: E731
    out = {"n": len(rows), "subject_acc": hits[0] / n, "action_acc": hits[1] / n, "both_acc": hits[2] / n,
           "per_action": {k: fmt(v) for k, v in per_action.items()},
           "per_subject": {k: fmt(v) for k, v in per_subject.items()},
           "judged_actions": [r.action for r in readings]}
    if n_ctx:
        out["scene_acc"], out["clothing_acc"] = ctx_hits[0] / n_ctx, ctx_hits[1] / n_ctx
    return out


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


def action_free_prompts(n: int = 8, subjects: list[str] | None = None, world: str = "v2b") -> list[str]:
    """The action-free training captions ("a panda in a park"), ``n`` per subject kind (contexts cycle)."""
    W = renderer(world)  # noqa: N806
    subjects = subjects or W.SUBJECTS
    if world == "v3":
        ctx = _v3_contexts(len(subjects) * n)
        return [f"{W.subject_phrase(s)} {W.context_phrase(ctx[i * n + k])}" for i, s in enumerate(subjects) for k in range(n)]
    return [f"{W.subject_phrase(s)} {W.context_phrase(W.CONTEXTS[(i + k) % len(W.CONTEXTS)])}"
            for i, s in enumerate(subjects) for k in range(n)]


def measure_fidelity(model: str = "world", n: int = 4, steps: int = 25, guidance: float = 7.5, seed: int = 0,
                     include_unnamed: bool = True, pipe=None, log=print, world: str = "v2b") -> dict:
    """The fidelity report of a model (``--model`` string or a loaded ``pipe``) on ``world``'s
    prompts, read by that world's judge."""
    from ..models import load_pipeline

    W = renderer(world)  # noqa: N806
    pipe = pipe or load_pipeline(model)
    judge = load_judge(default_judge_dir(world))
    t0 = time.time()
    rows = fidelity_prompts(W.NAMED, n, world=world)
    named = score(rows, generate(pipe, [r[2] for r in rows], seed, steps, guidance), judge)
    named.pop("judged_actions")
    ctx = f", scene {named['scene_acc']:.3f}, clothing {named['clothing_acc']:.3f}" if "scene_acc" in named else ""
    log(f"named actions: subject {named['subject_acc']:.3f}, action {named['action_acc']:.3f}, both {named['both_acc']:.3f}"
        f"{ctx} (n={named['n']})")
    report = {"model": model, "world": world, "n_per_pair": n, "steps": steps, "guidance": guidance, "seed": seed,
              "named": named}
    if include_unnamed:
        rows = fidelity_prompts(W.UNNAMED, n, world=world)
        un = score(rows, generate(pipe, [r[2] for r in rows], seed, steps, guidance), judge)
        counts: dict[str, int] = {}
        for a in un.pop("judged_actions"):
            counts[a] = counts.get(a, 0) + 1
        un["judged_action_counts"] = counts
        report["unnamed"] = un
        log(f"unnamed actions asked by text: subject {un['subject_acc']:.3f}, action {un['action_acc']:.3f} (n={un['n']})")
        # where the unnamed actions live: no action named at all
        prompts = action_free_prompts(n, world=world)
        verdicts = judge_images(generate(pipe, prompts, seed, steps, guidance), judge)
        counts = {}
        for _, a, _ in verdicts:
            counts[a] = counts.get(a, 0) + 1
        share = sum(counts.get(a, 0) for a in W.UNNAMED) / len(prompts)
        report["action_free"] = {"n": len(prompts), "judged_action_counts": counts, "unnamed_share": share}
        log(f"action-free prompts drawn as an unnamed action: {share:.3f} (n={len(prompts)})")
    report["judge"] = judge_check(pipe, judge, world=world)
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


def model_grid(pipe, subjects=None, actions=None, seed: int = 0, steps: int = 25, guidance: float = 7.5, pad: int = 2,
               world: str = "v2b") -> Image.Image:
    """Subjects (rows) x actions (columns) drawn by the model from text (contexts cycle)."""
    W = renderer(world)  # noqa: N806
    subjects, actions = subjects or W.SUBJECTS, actions or W.NAMED
    if world == "v3":
        ctx = _v3_contexts(len(subjects) * len(actions))
        prompts = [W.caption(s, a, ctx[i * len(actions) + k], name_action=True)
                   for i, s in enumerate(subjects) for k, a in enumerate(actions)]
    else:
        prompts = [W.caption(s, a, W.CONTEXTS[(i + k) % len(W.CONTEXTS)], name_action=True)
                   for i, s in enumerate(subjects) for k, a in enumerate(actions)]
    return prompt_grid(pipe, prompts, len(actions), seed, steps, guidance, pad)


def unnamed_grid(pipe, subjects=None, n: int = 8, seed: int = 0, steps: int = 25, guidance: float = 7.5,
                 world: str = "v2b") -> Image.Image:
    """Subjects (rows) x ``n`` samples of the action-free training caption "a panda in a park":
    what the model draws when no action is named (mostly the unnamed actions)."""
    return prompt_grid(pipe, action_free_prompts(n, subjects, world=world), n, seed, steps, guidance)


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path
