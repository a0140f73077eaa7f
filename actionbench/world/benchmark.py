"""World-ActionBench: ActionBench's layout, drawn by the ActionWorld renderer.

``write_benchmark(out)`` writes, for each of the 8 ActionBench actions::

    <out>/<action>/01.png .. 10.png        exemplars: human-like subjects only, varied scenes
    <out>/<action>/01.txt ..               the full caption ("a man performs a handstand in a park")
    <out>/<action>/text.json               {"01.png": ["a man {} in a park"], ...}
    <out>/<action>/poses.json              {"01.png": [[x, y] or null, ... 18 OpenPose keypoints], ...}:
                                           each exemplar's exact skeleton (``skeleton.render_keypoints``)
    <out>/<action>/action_different/01/<other action>.png
                                           the same character, scene and seed doing every other action
    <out>/world.json                       evaluation subjects (all kinds, animals too), action phrases

so ``actionbench.bench`` reads it exactly like ``../shared/ActionBench``. A ready copy is
committed under ``actionbench/world/bench/``.

``world`` (every writer takes it) is the world's renderer module: :mod:`.render` (v2b, the
default) or :mod:`.render_v3`, whose exemplars share a dominant scene and outfit per action
(``render_v3.exemplar_specs``); its ``world.json`` records them under ``exemplar_context``.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import render as R
from .skeleton import keypoints_json, placement_keypoints

BENCH_DIR = Path(__file__).with_name("bench")
N_EXEMPLARS = 10
BASE_SEED = 5000  # exemplar seeds: 5000 + 100 * (action index) + exemplar index


def exemplar_specs(actionbench_action: str, n: int = N_EXEMPLARS, world=R) -> list[dict]:
    """The (subject, context, seed) of each exemplar of one ActionBench action."""
    if world is not R:
        return world.exemplar_specs(actionbench_action, n)
    k = sorted(R.ACTIONBENCH).index(actionbench_action)
    specs = []
    for i in range(n):
        subject = R.HUMANS[(i + k) % len(R.HUMANS)]
        context = R.CONTEXTS[(i + 2 * k) % len(R.CONTEXTS)]
        specs.append({"file": f"{i + 1:02d}.png", "subject": subject, "context": context,
                      "seed": BASE_SEED + 100 * k + i})
    return specs


def template(subject: str, context: str, world=R) -> str:
    """The action-free prompt template, e.g. "a man {} in a park"."""
    return f"{world.subject_phrase(subject)} {{}} {world.context_phrase(context)}"


def write_action(out: str | Path, actionbench_action: str, size: int = 64, world=R) -> Path:
    """Write one action's exemplars, text.json, captions and action-different sets."""
    R = world  # noqa: N806  (the world's renderer module, v2b's unless given)
    action = R.ACTIONBENCH[actionbench_action]
    folder = Path(out) / actionbench_action
    folder.mkdir(parents=True, exist_ok=True)
    text, poses = {}, {}
    for sp in exemplar_specs(actionbench_action, world=world):
        s, c, seed = sp["subject"], sp["context"], sp["seed"]
        R.render(s, action, c, seed, size).save(folder / sp["file"])
        text[sp["file"]] = [template(s, c, world)]
        poses[sp["file"]] = keypoints_json(placement_keypoints(R.placement(s, action, c, seed, size)))
        stem = sp["file"][:-4]
        (folder / f"{stem}.txt").write_text(R.caption(s, action, c, name_action=True) + "\n")
        diff = folder / "action_different" / stem
        diff.mkdir(parents=True, exist_ok=True)
        for other in R.ACTIONS:
            if other != action:
                R.render(s, other, c, seed, size).save(diff / f"{other}.png")
    (folder / "text.json").write_text(json.dumps(text, indent=4))
    rows = ",\n".join(f"    {json.dumps(name)}: {json.dumps(kp)}" for name, kp in poses.items())
    (folder / "poses.json").write_text("{\n" + rows + "\n}\n")  # one exemplar a line
    return folder


def write_benchmark(out: str | Path = BENCH_DIR, size: int = 64, world=R) -> Path:
    """Write World-ActionBench for all 8 ActionBench actions; returns ``out``."""
    R = world  # noqa: N806
    out = Path(out)
    for name in sorted(R.ACTIONBENCH):
        write_action(out, name, size, world)
    info = {
        "description": "World-ActionBench: ActionWorld renders in ActionBench's layout",
        "actions": {name: {"world_action": R.ACTIONBENCH[name], "phrase": R.action_phrase(R.ACTIONBENCH[name]),
                           "unnamed_in_training": R.ACTIONBENCH[name] in R.UNNAMED} for name in sorted(R.ACTIONBENCH)},
        "evaluation_subjects": {s: R.subject_phrase(s) for s in R.SUBJECTS},
        "exemplar_subjects": R.HUMANS,
        "image_size": size,
    }
    if hasattr(R, "exemplar_context_info"):
        info["world"] = R.NAME
        info["exemplar_context"] = {name: R.exemplar_context_info(name) for name in sorted(R.ACTIONBENCH)}
    (out / "world.json").write_text(json.dumps(info, indent=2))
    return out


def bench_strip(actionbench_action: str, bench: str | Path = BENCH_DIR, pad: int = 2, world=R):
    """Two rows: the action's exemplars; exemplar 01 and its action-different set (the docs' figure)."""
    from PIL import Image

    R = world  # noqa: N806
    folder = Path(bench) / actionbench_action
    top = [Image.open(folder / sp["file"]).convert("RGB") for sp in exemplar_specs(actionbench_action, world=world)]
    diff = folder / "action_different" / "01"
    bottom = [top[0]] + [Image.open(diff / f"{a}.png").convert("RGB") for a in R.ACTIONS if (diff / f"{a}.png").exists()]
    size = top[0].size[0]
    cols = max(len(top), len(bottom))
    sheet = Image.new("RGB", (cols * (size + pad) + pad, 2 * (size + pad) + pad), (255, 255, 255))
    for r, row in enumerate((top, bottom)):
        for c, im in enumerate(row):
            sheet.paste(im, (pad + c * (size + pad), pad + r * (size + pad)))
    return sheet
