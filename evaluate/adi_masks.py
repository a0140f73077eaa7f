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

The functions are pure (:func:`mask_stats` on gradient tensors), so the numbers can be
checked on hand-made gradients (tests/test_mask_measurements.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from methods.adi.functional import action_mask, context_mask, merge_masks

BETAS = (0.2, 0.4, 0.6, 0.8)


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
    import methods

    cls = methods.get_method("adi")
    m = cls(pipe, action_set, cls.Config(seed=seed))
    m.setup(Path(work_dir) if work_dir else Path("scratch/.adi-masks-cache"))
    generator = torch.Generator().manual_seed(seed)
    sums: dict = {}
    for _ in range(n_triples):
        anchor, latents = m.sample_triples(generator)
        noise, t = m.triple_noise(generator, latents)
        g, _ = m.triple_gradients(m.ids[anchor], latents, noise, t)
        g = g[0]  # (3, L, d): anchor, context-different, action-different
        for beta in betas:
            for name, mask in masks_for(g[0], g[1], g[2], beta).items():
                for k, v in mask_stats(g[0], mask).items():
                    key = (beta, name, k)
                    sums[key] = sums.get(key, 0.0) + v
    out: dict = {}
    for (beta, name, k), v in sums.items():
        out.setdefault(f"{beta:g}", {}).setdefault(name, {})[k] = round(v / n_triples, 4)
    return out


def main() -> None:
    from actionbench.bench import load_action
    from actionbench.models import load_pipeline
    from actionbench.world.benchmark import BENCH_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--actions", default="salute,handstand")
    p.add_argument("--triples", type=int, default=64)
    p.add_argument("--model", default="world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/world-adi-masks/masks.json")
    args = p.parse_args()
    pipe = load_pipeline(args.model)
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
