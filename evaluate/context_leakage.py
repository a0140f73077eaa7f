"""Context leakage (issue #23): does a learned action bring its exemplars' scene or outfit along?

On ActionWorld v3 each action's exemplars share a dominant scene and outfit (the bench's
``world.json``, ``exemplar_context``) and the evaluation prompts ask for a scene *and* an
outfit that differ from both (``render_v3.evaluation_contexts``). An image the judge reads
in the dominant scene, or in the dominant outfit, took that context from the exemplars:

    scene leak  = judged scene  == dominant scene   (asked for another)
    outfit leak = judged outfit == dominant outfit  (asked for another)
    context leak = either

A method's rate is the share of its images that leak, with a cluster-bootstrap interval
over (action, learning seed) as in the method tables, and the paired difference against a
reference method on the same image slots. Slots whose prompt asked for the dominant scene
(or outfit) are not counted for that kind of leak: there, drawing it is obedience.

The functions are pure (per-image records in, numbers out); the demo and the tables call
them once a v3 judge with scene and outfit heads exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluate.paired import bootstrap_ci, paired_bootstrap

KINDS = ("scene", "outfit", "context")


@dataclass(frozen=True)
class Slot:
    """One generated image: what its prompt asked, what the judge saw, the exemplars' dominant context."""

    asked_scene: str
    asked_outfit: str
    judged_scene: str | None  # None: the judge could not tell (counted as no leak, and reported)
    judged_outfit: str | None
    dominant_scene: str
    dominant_outfit: str


def leaks(slot: Slot) -> dict[str, int | None]:
    """0/1 per kind of leak for one image; None where the prompt asked for the dominant one itself."""
    scene = None if slot.asked_scene == slot.dominant_scene else int(slot.judged_scene == slot.dominant_scene)
    outfit = None if slot.asked_outfit == slot.dominant_outfit else int(slot.judged_outfit == slot.dominant_outfit)
    context = None if scene is None and outfit is None else int(bool(scene) or bool(outfit))
    return {"scene": scene, "outfit": outfit, "context": context}


def leakage_rates(slots: Sequence[Slot], clusters: Sequence | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """Per kind: ``rate``, ``low``, ``high`` (percent, 95% interval) and ``n`` counted images."""
    if clusters is not None and len(clusters) != len(slots):
        raise ValueError(f"{len(clusters)} cluster labels for {len(slots)} images")
    per = [leaks(s) for s in slots]
    out = {}
    for kind in KINDS:
        keep = [i for i, p in enumerate(per) if p[kind] is not None]
        x = [per[i][kind] for i in keep]
        cl = None if clusters is None else [clusters[i] for i in keep]
        mean, lo, hi = bootstrap_ci(x, cl, n_boot=n_boot, seed=seed)
        out[kind] = {"rate": round(100 * mean, 1), "low": round(100 * lo, 1), "high": round(100 * hi, 1), "n": len(x)}
    out["cannot_tell"] = sum(s.judged_scene is None or s.judged_outfit is None for s in slots)
    return out


def paired_leakage(a: Sequence[Slot], b: Sequence[Slot], clusters: Sequence | None = None, kind: str = "context",
                   n_boot: int = 2000, seed: int = 0) -> dict:
    """Method ``a`` minus method ``b`` in leak rate (points) on the image slots both hold
    (the same prompts, in the same order), with the paired bootstrap's interval and p."""
    if kind not in KINDS:
        raise ValueError(f"unknown leak kind {kind!r}: one of {', '.join(KINDS)}")
    if len(a) != len(b):
        raise ValueError(f"paired leakage needs the same image slots: {len(a)} vs {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        if (x.asked_scene, x.asked_outfit, x.dominant_scene, x.dominant_outfit) != (
                y.asked_scene, y.asked_outfit, y.dominant_scene, y.dominant_outfit):
            raise ValueError(f"slot {i} asks for different contexts in the two runs: not paired")
    la, lb = [leaks(s)[kind] for s in a], [leaks(s)[kind] for s in b]
    keep = [i for i, v in enumerate(la) if v is not None]
    cl = None if clusters is None else [clusters[i] for i in keep]
    r = paired_bootstrap([la[i] for i in keep], [lb[i] for i in keep], cl, n_boot=n_boot, seed=seed)
    return {k: (round(100 * v, 1) if k != "p" else round(v, 4)) for k, v in r.items()} | {"n": len(keep)}
