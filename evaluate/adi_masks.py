"""What ADI's gradient masks keep, measured on real triples (issue #11's "find out why").

    python -m evaluate.adi_masks --actions salute,handstand --out results/world-adi-masks/masks.json

For ``--triples`` sampled triples of each action (anchor, context-different,
action-different; ADI's own sampler, noise and timesteps) the three identifier gradients
are computed once at the identifier's starting point, and for every beta the masks of
ADI-SPEC section 2 are applied to them. Reported per beta and mask (context only, action
only, their intersection = ADI, their union), averaged over triples and layers:

* ``channels``: the share of the d channels kept (what ADI's ``kept`` log says);
* ``norm``: the share of the anchor gradient's squared L2 norm kept, ||m * g||^2 / ||g||^2.
  A mask that keeps channels at random keeps ``norm`` ~= ``channels``; below it, the mask
  drops the gradient's strong channels;
* ``cosine``: the cosine between the kept update m * g and the whole gradient g.

**Informativeness** (issue #21, ``--informativeness``): does a mask find the channels
where the action's gradient lives? For every mask kind of ADI and its controls and every
beta, the triples are split in two halves; the cosine between one half's mean *masked*
anchor gradient and the other half's mean *full* anchor gradient (both directions
averaged, all layers' channels as one vector) says how well what the mask keeps predicts
the update that independent data ask for. The ceiling is the full gradient against the
full gradient (``none``); a mask that keeps what matters beats a random mask of its
share. Point estimate: the mean over 50 random splits; 95% interval: triples resampled
(bootstrap), then split.

The functions are pure (:func:`mask_stats`, :func:`split_half_cosine` on gradient
tensors), so the numbers can be checked on hand-made gradients (tests/test_adi_masks.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from methods.adi.functional import action_mask, context_mask, merge_masks, strategy_mask

BETAS = (0.2, 0.4, 0.6, 0.8)
# informativeness: every mask kind of ADI and of its controls, at the betas the trial uses
# (0.875 keeps 8 of 64 channels, ADI's share at 0.6)
INFO_KINDS = ("none", "adi", "relative", "union", "context-only", "action-only", "random", "uniform", "min", "max")
INFO_BETAS = (0.2, 0.4, 0.6, 0.8, 0.875)


def masks_for(g_anchor: torch.Tensor, g_context: torch.Tensor, g_action: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """ADI's masks (L, d) for one triple's gradients (L, d): context, action, ADI (both), union."""
    m_c, m_a = context_mask(g_anchor, g_context, beta), action_mask(g_anchor, g_action, beta)
    return {"context": m_c, "action": m_a, "adi": merge_masks(m_c, m_a, "intersection"), "union": merge_masks(m_c, m_a, "union")}


def mask_stats(g: torch.Tensor, m: torch.Tensor) -> dict[str, float]:
    """Per-row (layer) shares kept by mask ``m`` of gradient ``g`` (both (L, d)), averaged over rows."""
    m = m.to(g.dtype)
    total = (g * g).sum(-1).clamp_min(1e-30)
    kept = (g * m) * (g * m)
    cos = (g * m * g).sum(-1) / ((g * m).norm(dim=-1) * g.norm(dim=-1)).clamp_min(1e-30)
    return {"channels": float(m.mean()), "norm": float((kept.sum(-1) / total).mean()), "cosine": float(cos.mean())}


def measure(pipe, action_set, n_triples: int = 64, betas=BETAS, seed: int = 0, work_dir: Path | None = None) -> dict:
    """Mean :func:`mask_stats` per beta and mask over ``n_triples`` triples of ``action_set``."""
    sums: dict = {}
    for g in triple_gradients(pipe, action_set, n_triples, seed, work_dir):  # (3, L, d): anchor, context, action
        for beta in betas:
            for name, mask in masks_for(g[0], g[1], g[2], beta).items():
                for k, v in mask_stats(g[0], mask).items():
                    key = (beta, name, k)
                    sums[key] = sums.get(key, 0.0) + v
    out: dict = {}
    for (beta, name, k), v in sums.items():
        out.setdefault(f"{beta:g}", {}).setdefault(name, {})[k] = round(v / n_triples, 4)
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


def split_half_cosine(masked: torch.Tensor, full: torch.Tensor, n_splits: int = 50, n_boot: int = 200,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): cosine between one half's mean masked gradient and the other half's
    mean full gradient, both directions averaged; ``masked``, ``full``: (N, D) per triple.
    The mean is over ``n_splits`` random splits of the N triples, the 95% interval over
    ``n_boot`` bootstrap resamples of the triples (each split once)."""
    if masked.shape != full.shape or masked.shape[0] < 4:
        raise ValueError(f"need (N >= 4, D) gradients of one shape, got {tuple(masked.shape)} and {tuple(full.shape)}")
    gen = torch.Generator().manual_seed(seed)
    n = masked.shape[0]

    def one(idx: torch.Tensor) -> float:
        perm = idx[torch.randperm(len(idx), generator=gen)]
        a, b = perm[: len(perm) // 2], perm[len(perm) // 2:]
        return 0.5 * (_cos(masked[a].mean(0), full[b].mean(0)) + _cos(masked[b].mean(0), full[a].mean(0)))

    point = sum(one(torch.arange(n)) for _ in range(n_splits)) / n_splits
    boots = sorted(one(torch.randint(0, n, (n,), generator=gen)) for _ in range(n_boot))
    return point, boots[int(0.025 * (n_boot - 1))], boots[int(round(0.975 * (n_boot - 1)))]


def triple_gradients(pipe, action_set, n_triples: int, seed: int = 0, work_dir: Path | None = None) -> torch.Tensor:
    """(N, 3, L, d): anchor, context- and action-different gradients of ``n_triples`` triples
    at the identifier's starting point (ADI's own sampler, noise and timesteps)."""
    import methods

    cls = methods.get_method("adi")
    m = cls(pipe, action_set, cls.Config(seed=seed))
    m.setup(Path(work_dir) if work_dir else Path("scratch/.adi-masks-cache"))
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_triples):
        anchor, latents = m.sample_triples(generator)
        noise, t = m.triple_noise(generator, latents)
        out.append(m.triple_gradients(m.ids[anchor], latents, noise, t)[0][0])
    return torch.stack(out)


def informativeness(g: torch.Tensor, kinds=INFO_KINDS, betas=INFO_BETAS, seed: int = 0, n_boot: int = 200) -> dict:
    """``{kind: {beta: {"cosine", "low", "high", "channels"}}}`` over triples' gradients ``g``
    (N, 3, L, d); ``none`` once (the ceiling), under beta ``"-"``."""
    out: dict = {}
    generator = torch.Generator().manual_seed(seed)
    full = g[:, 0].flatten(1)
    for kind in kinds:
        for beta in (("-",) if kind == "none" else betas):
            masks = torch.stack([strategy_mask(kind, gi[0], gi[1], gi[2], 0.5 if beta == "-" else beta, generator) for gi in g])
            masked = (g[:, 0] * masks).flatten(1)
            mean, low, high = split_half_cosine(masked, full, n_boot=n_boot, seed=seed)
            out.setdefault(kind, {})[f"{beta:g}" if beta != "-" else beta] = {
                "cosine": round(mean, 4), "low": round(low, 4), "high": round(high, 4),
                "channels": round(float(masks.float().mean()), 4)}
    return out


# the rows the docs show: each mask at the share it has in the trial's runs
DOC_ROWS = (("none", "-"), ("adi", "0.6"), ("relative", "0.6"), ("context-only", "0.6"), ("action-only", "0.6"),
            ("union", "0.6"), ("random", "0.875"), ("uniform", "0.875"), ("min", "0.875"), ("max", "0.875"),
            ("random", "0.6"), ("adi", "0.2"), ("random", "0.2"))


def informativeness_markdown(report: dict, rows=DOC_ROWS) -> str:
    """The docs' table from ``masks.json``: per (mask, beta) its kept share and split-half
    cosine per action with the 95% interval, and the mean over actions."""
    actions = list(report["actions"])
    lines = ["| mask | beta | channels kept | " + " | ".join(actions) + " | mean |",
             "|---|---|---|" + "---|" * (len(actions) + 1)]
    for kind, beta in rows:
        cells = [report["actions"][a].get(kind, {}).get(beta) for a in actions]
        if any(c is None for c in cells):
            continue
        kept = sum(c["channels"] for c in cells) / len(cells)
        mean = sum(c["cosine"] for c in cells) / len(cells)
        lines.append(f"| {kind} | {beta} | {100 * kept:.1f}% | "
                     + " | ".join(f"{c['cosine']:.2f} [{c['low']:.2f}, {c['high']:.2f}]" for c in cells) + f" | {mean:.2f} |")
    return "\n".join(lines)


def main() -> None:
    from actionbench.bench import load_action
    from actionbench.models import load_pipeline
    from actionbench.world.benchmark import BENCH_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--actions", default="salute,handstand")
    p.add_argument("--triples", type=int, default=64)
    p.add_argument("--model", default="world-v2b")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/world-adi-masks/masks.json")
    p.add_argument("--informativeness", action="store_true",
                   help="the split-half cosine of every mask kind and beta (issue #21) instead of the kept shares; "
                        "default --out results/adi-trial/masks.json")
    p.add_argument("--threads", type=int, help="torch threads (default torch's)")
    p.add_argument("--table", help="print the docs' informativeness table of this masks.json and stop")
    args = p.parse_args()
    if args.table:
        print(informativeness_markdown(json.loads(Path(args.table).read_text())))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    if args.informativeness:
        out = Path(args.out if args.out != p.get_default("out") else "results/adi-trial/masks.json")
        report = json.loads(out.read_text()) if out.exists() else {}
        report.update({"model": args.model, "triples": args.triples, "seed": args.seed,
                       "measure": "split-half cosine: mean masked anchor gradient of one half vs mean full "
                                  "anchor gradient of the other, both directions; 50 splits, 95% bootstrap interval"})
        report.setdefault("actions", {})
        for action in args.actions.split(","):
            t0 = time.process_time()
            g = triple_gradients(pipe, load_action(BENCH_DIR / action), args.triples, args.seed)
            report["actions"][action] = informativeness(g, seed=args.seed)
            report.setdefault("cpu_seconds", {})[action] = round(time.process_time() - t0, 1)
            by = report["actions"][action]
            print(action, "  ".join(f"{k} {v.get('0.875', v.get('0.6', v.get('-')))['cosine']:.2f}" for k, v in by.items()))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1))  # after each action: nothing lost on a crash
        print(f"wrote {out}")
        return
    report = {"model": args.model, "triples": args.triples, "seed": args.seed, "actions": {}}
    for action in args.actions.split(","):
        report["actions"][action] = measure(pipe, load_action(BENCH_DIR / action), args.triples, seed=args.seed)
        print(action)
        for beta, by in report["actions"][action].items():
            print(f"  beta {beta}: " + "  ".join(f"{n} ch {s['channels']:.2f} norm {s['norm']:.2f} cos {s['cosine']:.2f}" for n, s in by.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
