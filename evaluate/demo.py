"""The demo: learn an action the world model cannot be asked for, and judge the results.

``actionbench demo`` learns ``salute`` on the ActionWorld v3 model (``--model world``: no
caption of the world names any of the 8 benchmark actions, and each action's exemplars
share a dominant scene and outfit) from the v3 World-ActionBench exemplars with ADI at the
paper's masks, ADI without masks and P+, each at the rate chosen once in
``results/world-v3-sweep`` (on salute) and on an equal budget of 600 exemplar
images; it generates every evaluation subject doing it, in scenes and outfits other than
the exemplars' dominant ones, beside the text prompt (the paper's "Stable Diffusion" row),
writes a grid (leaked images framed in red), and prints action / subject / total accuracy
and the context-leak rate as read by the v3 world judge, with paired tests against ADI.
``--world v2b`` runs the archived v2b demo (with the world ControlNet on the exemplars'
skeletons). ``--actions all`` does the same for all 8 actions; ``python -m
evaluate.world_table`` builds the full table on top of it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from actionbench.errors import ActionBenchError
from actionbench.models import WORLD_MODEL_OF
from actionbench.world.worlds import BENCH_DIRS, renderer

# the rates are those the sweep chose (results/world-sweep/chosen_lr.json), written as the table writes them
DEMO_METHODS = ("sd", "controlnet", "pplus:lr=0.005", "adi:lr=0.02", "adi:mask=none:lr=0.02")
DEMO_ACTION = "salute"
DEMO_IMAGES_SEEN = 600
# (ours) The demo's budget: ADI's and TI's paper settings (3000 steps at 2e-4 / 2.5e-4)
# take hours on a CPU; the same short budget is given to both.
DEMO_STEPS = 300
DEMO_LR = 5e-3
# (ours) The class prompt of prior preservation on the world model: its exemplars are
# human-like characters, and "a photo of a person" uses words it never saw.
WORLD_CLASS_PROMPT = "a man in a park"
# v3: the rates the v3 sweep chose on salute (results/world-v3-sweep/chosen_lr.json; ADI's
# ablation takes ADI's rate); the demo keeps its four columns (the table has the ControlNet row).
DEMO_METHODS_V3 = ("sd", "pplus:lr=0.02", "adi:lr=0.001", "adi:mask=none:lr=0.001")
# the model each world's demo runs on by default: each version's own name
WORLD_MODELS = WORLD_MODEL_OF
CLASS_PROMPTS = {"v2b": WORLD_CLASS_PROMPT, "v3": "a man in a white shirt in a park"}


@dataclass
class DemoSettings:
    actions: tuple[str, ...] = (DEMO_ACTION,)
    methods: tuple[str, ...] = DEMO_METHODS
    steps: int = DEMO_STEPS
    lr: float = DEMO_LR
    n: int = 4  # images per subject-action pair, as in the paper
    sample_steps: int = 25
    guidance: float = 7.5
    seed: int = 0  # sampling seed (the same image slots for every method: paired comparisons)
    learn_seeds: tuple[int, ...] = (0,)  # one learned identifier per seed
    model: str | None = None  # None: the world's model (WORLD_MODELS)
    device: str = "cpu"
    # (ours) equal budget in exemplar images seen: each learner runs ceil(images_seen / its
    # batch_size) steps instead of ``steps`` (ADI's batch counts triples: one exemplar anchor each)
    images_seen: int | None = None
    world: str = "v3"  # the ActionWorld version: its bench, evaluation prompts and judge (v3: context leakage too)

    def __post_init__(self):
        renderer(self.world)  # an unknown world: worlds.UnknownWorldError (an ActionBenchError)
        if self.model is None:
            self.model = WORLD_MODELS[self.world]


# settings that must match for ``--resume`` to add to an earlier report
RESUME_KEYS = ("steps", "lr", "n", "sample_steps", "guidance", "seed", "model", "images_seen", "world")
SETTING_DEFAULTS = {"world": "v2b"}  # what a report from before a setting existed was made with


def _setting(settings: dict, key: str):
    """A report's setting, read as it was meant: a report from before the v3 world (no
    ``world`` key) ran on v2b, and its model ``world`` is what is now called ``world-v2b``."""
    value = settings.get(key, SETTING_DEFAULTS.get(key))
    if key == "model" and value == "world" and "world" not in settings:
        return "world-v2b"
    return value


def world_subjects(world: str = "v2b") -> list[tuple[str, str]]:
    """(kind, phrase) of every ActionWorld subject kind: the evaluation subjects."""
    W = renderer(world)  # noqa: N806
    return [(s, W.subject_phrase(s)) for s in W.SUBJECTS]


def subject_contexts(n: int, offset: int = 0, world: str = "v2b", action: str | None = None) -> list[str]:
    """The contexts of one subject's n evaluation prompts: v2b's cycle through its contexts;
    v3's through those whose scene *and* outfit differ from ``action``'s exemplars' dominant
    ones (``render_v3.evaluation_contexts``), so drawing the dominant one is leakage."""
    W = renderer(world)  # noqa: N806
    if world == "v3":
        return W.evaluation_contexts(action, n, offset * n)
    return [W.CONTEXTS[(offset + k) % len(W.CONTEXTS)] for k in range(n)]


def subject_templates(phrase: str, n: int, offset: int = 0, world: str = "v2b", action: str | None = None) -> list[str]:
    """n prompts "a panda {} in a park" (v3: "a panda {} in a red striped shirt in a park")."""
    W = renderer(world)  # noqa: N806
    return [f"{phrase} {{}} {W.context_phrase(c)}" for c in subject_contexts(n, offset, world, action)]


def context_slots(readings, contexts: list[str], action: str) -> list:
    """v3: a :class:`evaluate.context_leakage.Slot` per image (asked vs judged scene and outfit)."""
    from actionbench.world import render_v3
    from evaluate.context_leakage import Slot

    scene, outfit = render_v3.dominant_context(action)
    slots = []
    for r, c in zip(readings, contexts):
        asked_outfit, asked_scene = render_v3.split_context(c)
        slots.append(Slot(asked_scene, asked_outfit, r.scene, r.outfit, scene, outfit))
    return slots


def judge_learned(pipe, learned, world_action: str, s: DemoSettings, action: str | None = None):
    """Generate n images per subject with a learned action; the judge's verdicts and the images.
    v3 (``s.world``): the prompts avoid ``action``'s exemplars' dominant context, the v3 judge
    reads scene and outfit, and the scores add each slot's leaks and the leak rates."""
    import methods
    from actionbench.world.judge import default_judge_dir, load_judge, read_images

    W = renderer(s.world)  # noqa: N806
    rows, templates, contexts = [], [], []
    for si, (kind, phrase) in enumerate(world_subjects(s.world)):
        ctx = subject_contexts(s.n, si, s.world, action)
        templates += [f"{phrase} {{}} {W.context_phrase(c)}" for c in ctx]  # as subject_templates writes them
        contexts += ctx
        rows += [kind] * s.n
    images = methods.generate(pipe, learned, templates, seed=s.seed, steps=s.sample_steps, guidance=s.guidance, batch=len(templates))
    readings = read_images(images, load_judge(default_judge_dir(s.world)))
    verdicts = [(r.subject, r.action, r.probs) for r in readings]
    hits = [(js == kind, ja == world_action) for kind, (js, ja, _) in zip(rows, verdicts)]
    n = len(hits)
    on_animals = [js for kind, (js, _, _) in zip(rows, verdicts) if kind in W.ANIMALS]
    scores = {
        "action": sum(a for _, a in hits) / n,
        "subject": sum(sb for sb, _ in hits) / n,
        "total": sum(a and sb for sb, a in hits) / n,
        "n": n,
        # appearance leakage: the exemplars are all human-like, so an animal prompt judged
        # as a human-like kind has taken the exemplars' looks with the action
        "human_on_animals": sum(js in W.HUMANS for js in on_animals) / max(1, len(on_animals)),
        "animal_slots": len(on_animals), "animals_drawn_human": sum(js in W.HUMANS for js in on_animals),
        "judged_actions": {a: sum(ja == a for _, ja, _ in verdicts) for a in sorted({ja for _, ja, _ in verdicts})},
        "hits": [[int(sb), int(a)] for sb, a in hits],  # per image slot (subject ok, action ok): paired tests
    }
    if s.world == "v3":
        from evaluate.context_leakage import leaks

        per = [leaks(sl) for sl in context_slots(readings, contexts, action)]
        scores["leaks"] = [[p["scene"], p["outfit"], p["context"]] for p in per]  # per slot; None: not counted
        scores["judged_context"] = [[r.scene, r.outfit] for r in readings]
        scores.update(leak_rates(scores["leaks"]))
    return scores, images


def leak_rates(leaks: list) -> dict:
    """Scene / outfit / context leak rates (0-1) of per-slot leak triples (None: not counted)."""
    out = {}
    for i, kind in enumerate(("scene", "outfit", "context")):
        x = [row[i] for row in leaks if row[i] is not None]
        out[f"{kind}_leak"] = sum(x) / len(x) if x else float("nan")
    return out


def bench_dir(world: str = "v2b") -> Path:
    """The world's World-ActionBench folder; v3's (not committed) is written on first use (12 s)."""
    folder = BENCH_DIRS[world]
    if not (folder / "world.json").exists():
        if world == "v2b":
            raise ActionBenchError(f"the v2b World-ActionBench is missing from {folder}: it is committed; check out the repository again")
        from actionbench.world.benchmark import write_benchmark

        print(f"writing World-ActionBench ({world}) to {folder} (first use)")
        write_benchmark(folder, world=renderer(world))
    return folder


def world_actions(world: str = "v2b") -> tuple[str, ...]:
    """Every World-ActionBench action, sorted (``--actions all``)."""
    return tuple(sorted(p.name for p in bench_dir(world).iterdir() if p.is_dir()))


def parse_method_spec(spec: str) -> tuple[str, dict]:
    """``"adi:mask=none:beta=0.4"`` -> ``("adi", {"mask": "none", "beta": 0.4})``; values are read as YAML scalars."""
    import yaml

    name, *opts = spec.split(":")
    options = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            raise ActionBenchError(f"method option {opt!r} in {spec!r} is not KEY=VALUE (e.g. adi:mask=none:beta=0.4)")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        options[key.replace("-", "_")] = parsed
    return name, options


def demo_config(spec: str, s: DemoSettings, learn_seed: int | None = None):
    """(method name, config) of a method spec under the demo's budget: every learner gets the
    demo's steps, token learners also its learning rate (weight tuners keep their paper's),
    prior preservation the world's class prompt; the spec's own options win."""
    import methods
    from methods.weights import WeightMethod

    name, options = parse_method_spec(spec)
    cls = methods.get_method(name)
    fields = cls.Config.__dataclass_fields__
    overrides = {"seed": s.seed if learn_seed is None else learn_seed}
    learns = "steps" in fields and cls.Config().steps > 0  # the text prompt and ControlNet learn nothing
    if learns:
        overrides["steps"] = s.steps
    if "token" in fields and not issubclass(cls, WeightMethod):
        overrides["lr"] = s.lr
    if "class_prompt" in fields:
        overrides["class_prompt"] = CLASS_PROMPTS[s.world]
    overrides.update(options)
    config = cls.Config().with_overrides(**overrides)
    if s.images_seen and learns and "steps" not in options:
        config = config.with_overrides(steps=budget_steps(s.images_seen, config.batch_size))
    return name, config


def budget_steps(images_seen: int, batch_size: int) -> int:
    """Steps that show a learner ``images_seen`` exemplar images at ``batch_size`` per step (rounded up)."""
    if images_seen < 1 or batch_size < 1:
        raise ActionBenchError(f"--images-seen and batch_size must be >= 1 (got {images_seen}, {batch_size})")
    return -(-images_seen // batch_size)


def learn_for_demo(pipe, action_set, method: str, s: DemoSettings, work_dir: Path, learn_seed: int | None = None):
    """Learn with a method spec (``name[:key=value...]``) and the demo's budget (:func:`demo_config`)."""
    import methods

    name, config = demo_config(method, s, learn_seed)
    out = work_dir / f"{run_name(action_set.name, method, learn_seed)}.safetensors"
    return methods.learn(pipe, action_set, name, config, out=out, work_dir=work_dir, progress=True)


LEAK_FRAME = (230, 20, 20)  # the grid's frame around an image that shows the exemplars' dominant scene or outfit


def grid(images_by_method: dict[str, list[Image.Image]], n: int, subjects: list[str],
         leaked: dict[str, list[bool]] | None = None) -> Image.Image:
    """Rows: subjects; column blocks: methods (n images each), with labels. ``leaked`` (v3):
    per method, per image, whether it leaked context; those images get a red frame and the
    caption under the grid says how many (or that none did)."""
    size = images_by_method[next(iter(images_by_method))][0].size[0]
    label_w, head_h, gap = 70, 14, 6
    foot_h = 14 if leaked is not None else 0
    cols = len(images_by_method)
    sheet = Image.new("RGB", (label_w + cols * (n * size + gap), head_h + len(subjects) * size + foot_h), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (method, images) in enumerate(images_by_method.items()):
        x0 = label_w + c * (n * size + gap)
        draw.text((x0 + 2, 1), method, fill="black")
        for i, im in enumerate(images):
            x, y = x0 + (i % n) * size, head_h + (i // n) * size
            sheet.paste(im, (x, y))
            if leaked is not None and leaked.get(method, [False] * len(images))[i]:
                draw.rectangle((x, y, x + size - 1, y + size - 1), outline=LEAK_FRAME, width=2)
    for r, name in enumerate(subjects):
        draw.text((2, head_h + r * size + size // 2 - 5), name, fill="black")
    if leaked is not None:
        count = sum(sum(v) for v in leaked.values())
        text = (f"red frame: the exemplars' scene or outfit where the prompt asked for another ({count} images)" if count
                else "no image shows the exemplars' dominant scene or outfit (no context leak seen)")
        draw.text((2, head_h + len(subjects) * size + 1), text, fill=LEAK_FRAME if count else "black")
    return sheet


def run_demo(s: DemoSettings, out: Path, resume: bool = False) -> dict:
    """Learn, generate, judge; write grids, each run's images and ``demo.json`` under ``out``;
    return the report. ``resume`` keeps an earlier ``demo.json`` made with the same settings
    (:data:`RESUME_KEYS`) and skips every (action, method, learning seed) it already holds."""
    from actionbench.bench import load_action
    from actionbench.models import load_pipeline

    torch.manual_seed(s.seed)
    out.mkdir(parents=True, exist_ok=True)
    bench = bench_dir(s.world)
    bench_meta = json.loads((bench / "world.json").read_text())["actions"]
    for action in s.actions:
        if action not in bench_meta:
            raise ActionBenchError(f"unknown world action {action!r}; one of {', '.join(bench_meta)}")
    report = {"settings": dict(s.__dict__), "results": {}, "seconds": {}, "steps": {},
              "unnamed_actions": [a for a, m in bench_meta.items() if m["unnamed_in_training"]]}
    if resume:
        report = _resumed_report(out / "demo.json", s, report)
    t_start = time.perf_counter()
    for action in s.actions:
        action_set = load_action(bench / action)
        world_action = bench_meta[action]["world_action"]
        images_by_method, leaked = {}, {}
        for method in s.methods:
            steps = demo_config(method, s)[1].to_dict().get("steps")
            for ls in s.learn_seeds:
                key = f"{action}/{method}/seed{ls}"
                run_dir = out / "images" / action / _method_tag(method) / f"seed{ls}"
                if ls in report["results"].get(action, {}).get(method, {}).get("seeds", []):
                    if ls == s.learn_seeds[0]:
                        images_by_method[method] = _load_images(run_dir)
                        prev = report["results"][action][method]
                        if "leaks" in prev:
                            leaked[method] = [bool(row[2]) for row, sd in zip(prev["leaks"], prev["seeds"]) if sd == ls]
                    print(f"{action:10s} {method:18s} seed {ls}: in {out / 'demo.json'} already (--resume)")
                    continue
                t0 = time.perf_counter()
                pipe = load_pipeline(s.model, s.device)  # fresh: methods change the pipeline they are applied to
                learned = learn_for_demo(pipe, action_set, method, s, out / "learned", ls)
                scores, images = judge_learned(load_pipeline(s.model, s.device), learned, world_action, s, action)
                _save_images(images, run_dir)
                _add_seed(report["results"].setdefault(action, {}), method, ls, scores)
                report["seconds"][key] = round(time.perf_counter() - t0, 1)
                report["steps"][method] = steps
                if ls == s.learn_seeds[0]:
                    images_by_method[method] = images
                    if "leaks" in scores:
                        leaked[method] = [bool(row[2]) for row in scores["leaks"]]
                print(f"{action:10s} {method:18s} seed {ls}: action {scores['action']:.0%}  subject {scores['subject']:.0%}  total {scores['total']:.0%}")
                _write_report(report, out)  # after every learned identifier: nothing lost if a long run stops
        if all(images_by_method.values()):
            grid(images_by_method, s.n, [k for k, _ in world_subjects(s.world)],
                 leaked if s.world == "v3" else None).save(out / f"{action}_grid.png")
    report["seconds"]["total"] = round(sum(v for k, v in report["seconds"].items() if k != "total"), 1)
    report["seconds"]["this_run"] = round(time.perf_counter() - t_start, 1)
    _write_report(report, out)
    return report


def run_name(action: str, method: str, learn_seed: int | None = None) -> str:
    """A run's file stem in ``learned/``: ``salute-adi_mask-none_lr-0.02``, ``-seedN`` added past seed 0."""
    return f"{action}-{_method_tag(method)}" + ("" if learn_seed in (None, 0) else f"-seed{learn_seed}")


def _method_tag(method: str) -> str:
    return method.replace(":", "_").replace("=", "-")


def _save_images(images, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, im in enumerate(images):
        im.save(folder / f"{k:03d}.png")


def _load_images(folder: Path) -> list:
    """A resumed run's saved images (an empty list when an older report kept none: no grid then)."""
    return [Image.open(f).convert("RGB") for f in sorted(folder.glob("*.png"))] if folder.is_dir() else []


def _resumed_report(path: Path, s: DemoSettings, fresh: dict) -> dict:
    """The report at ``path`` to add to, if its settings match ``s`` on :data:`RESUME_KEYS`."""
    if not path.exists():
        return fresh
    old = json.loads(path.read_text())
    diff = {k: (_setting(old["settings"], k), getattr(s, k)) for k in RESUME_KEYS if _setting(old["settings"], k) != getattr(s, k)}
    if diff:
        what = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise ActionBenchError(f"--resume: {path} was made with other settings ({what}); give the same settings or another --out")
    merged = dict(old["settings"])
    for k in ("actions", "methods", "learn_seeds"):
        merged[k] = list(dict.fromkeys(list(old["settings"].get(k, [])) + list(getattr(s, k))))
    old["seconds"].pop("this_run", None)
    return {**fresh, **old, "settings": merged, "steps": old.get("steps", {})}


def _add_seed(by_method: dict, method: str, seed: int, scores: dict) -> None:
    """Fold one learning seed's scores into ``by_method[method]``: rates over all its seeds'
    images, ``hits`` concatenated in seed order, ``seeds`` naming each slot's seed."""
    scores = {**scores, "seeds": [seed] * scores["n"]}
    prev = by_method.get(method)
    by_method[method] = scores if prev is None else fold_scores(prev, scores)


def fold_scores(prev: dict, scores: dict) -> dict:
    """Two score records of one (action, method) over different learning seeds as one:
    counts summed, ``hits`` and ``seeds`` concatenated, rates recomputed from the slots."""
    if set(prev["seeds"]) & set(scores["seeds"]):
        raise ActionBenchError(f"learning seeds {sorted(set(prev['seeds']) & set(scores['seeds']))} are in both records: "
                               "each (action, method, seed) may be run once")
    judged = dict(prev["judged_actions"])
    for a, c in scores["judged_actions"].items():
        judged[a] = judged.get(a, 0) + c
    # slots in learning-seed order, whichever record came first: paired tests match slot to slot
    order = sorted(range(len(prev["hits"]) + len(scores["hits"])), key=lambda i: (prev["seeds"] + scores["seeds"])[i])
    hits = [(prev["hits"] + scores["hits"])[i] for i in order]
    extra = {}
    if ("leaks" in prev) != ("leaks" in scores):
        raise ActionBenchError("one record has context leaks (v3) and the other not: records of two worlds cannot be folded")
    if "leaks" in prev:
        for key in ("leaks", "judged_context"):
            extra[key] = [(prev[key] + scores[key])[i] for i in order]
        extra.update(leak_rates(extra["leaks"]))
    return {**extra, "hits": hits, "seeds": [(prev["seeds"] + scores["seeds"])[i] for i in order],
            "animal_slots": prev["animal_slots"] + scores["animal_slots"],
            "animals_drawn_human": prev["animals_drawn_human"] + scores["animals_drawn_human"],
            "judged_actions": judged, "n": len(hits),
            "action": sum(a for _, a in hits) / len(hits), "subject": sum(sb for sb, _ in hits) / len(hits),
            "total": sum(a and sb for sb, a in hits) / len(hits),
            "human_on_animals": (prev["animals_drawn_human"] + scores["animals_drawn_human"])
            / max(1, prev["animal_slots"] + scores["animal_slots"])}


def merge_reports(reports: list[dict]) -> dict:
    """Reports of one table run in parts (same :data:`RESUME_KEYS` settings; e.g. one
    process per group of actions or seeds) as one report: each (action, method) folded
    over the parts' learning seeds (:func:`fold_scores`), seconds and steps united."""
    if not reports:
        raise ActionBenchError("no reports to merge")
    first = reports[0]["settings"]
    for r in reports[1:]:
        diff = [k for k in RESUME_KEYS if _setting(r["settings"], k) != _setting(first, k)]
        if diff:
            raise ActionBenchError(f"reports made with other settings cannot be merged (they differ in {', '.join(diff)})")
    merged = {"settings": dict(first), "results": {}, "seconds": {}, "steps": {},
              "unnamed_actions": reports[0].get("unnamed_actions", [])}
    for k in ("actions", "methods", "learn_seeds"):
        merged["settings"][k] = list(dict.fromkeys(x for r in reports for x in r["settings"].get(k, [])))
    for r in reports:
        for action, by in r["results"].items():
            into = merged["results"].setdefault(action, {})
            for method, scores in by.items():
                into[method] = scores if method not in into else fold_scores(into[method], scores)
        merged["seconds"].update({k: v for k, v in r["seconds"].items() if k not in ("total", "this_run")})
        merged["steps"].update(r.get("steps", {}))
    merged["seconds"]["total"] = round(sum(merged["seconds"].values()), 1)
    # the same method order in every action: the settings' order
    order = {m: i for i, m in enumerate(merged["settings"]["methods"])}
    merged["results"] = {a: dict(sorted(by.items(), key=lambda kv: order.get(kv[0], len(order))))
                         for a, by in sorted(merged["results"].items(), key=lambda kv: merged["settings"]["actions"].index(kv[0])
                                             if kv[0] in merged["settings"]["actions"] else len(merged["settings"]["actions"]))}
    return merged


def _write_report(report: dict, out: Path) -> None:
    tmp = out / "demo.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out / "demo.json")


def has_context_leaks(report: dict) -> bool:
    """Whether the report's runs carry v3 context leaks (a leakage column then)."""
    return any("leaks" in r for by in report["results"].values() for r in by.values())


def table(report: dict) -> str:
    """A markdown table of action / subject / total accuracy per action and method (v3: and context leakage)."""
    ctx = has_context_leaks(report)
    lines = ["| action | method | action acc. | subject acc. | total | animals drawn human |" + (" context leak |" if ctx else ""),
             "|---|---|---|---|---|---|" + ("---|" if ctx else "")]
    for action, by_method in report["results"].items():
        for method, r in by_method.items():
            leak = f"{r['human_on_animals']:.1%}" if "human_on_animals" in r else "-"
            row = f"| {action} | {method} | {r['action']:.1%} | {r['subject']:.1%} | {r['total']:.1%} | {leak} |"
            if ctx:
                row += f" {r['context_leak']:.1%} |" if "context_leak" in r else " - |"
            lines.append(row)
    return "\n".join(lines)


def summary_table(report: dict) -> str:
    """Markdown: one row per method, accuracies averaged over the report's actions (equal weight)."""
    by_method: dict[str, list[dict]] = {}
    for by in report["results"].values():
        for method, r in by.items():
            by_method.setdefault(method, []).append(r)
    n_actions = len(report["results"])
    ctx = has_context_leaks(report)
    keys = ("action", "subject", "total", "human_on_animals") + (("context_leak",) if ctx else ())
    lines = ["| method | action acc. | subject acc. | total | animals drawn human |" + (" context leak |" if ctx else "") + " actions |",
             "|---|---|---|---|---|---|" + ("---|" if ctx else "")]
    for method, rs in by_method.items():
        mean = {k: sum(r.get(k, float("nan")) for r in rs) / len(rs) for k in keys}
        lines.append(f"| {method} | {mean['action']:.1%} | {mean['subject']:.1%} | {mean['total']:.1%} | "
                     f"{mean['human_on_animals']:.1%} |" + (f" {mean['context_leak']:.1%} |" if ctx else "")
                     + f" {len(rs)}/{n_actions} |")
    return "\n".join(lines)


def totals_matrix(report: dict) -> str:
    """Markdown: one row per method, one column per action, each cell the total accuracy
    (pooled over the learning seeds the cell ran, with the seed count when it is not the
    most common one); "-" where the method did not run that action."""
    actions = list(report["results"])
    methods = list(dict.fromkeys(m for by in report["results"].values() for m in by))
    n_seeds = {(a, m): len(set(r.get("seeds", [0]))) for a, by in report["results"].items() for m, r in by.items()}
    usual = max(set(n_seeds.values()), key=list(n_seeds.values()).count) if n_seeds else 1
    lines = ["| method | " + " | ".join(actions) + " |", "|---|" + "---|" * len(actions)]
    for m in methods:
        cells = []
        for a in actions:
            r = report["results"][a].get(m)
            if r is None:
                cells.append("-")
            else:
                k = n_seeds[(a, m)]
                cells.append(f"{r['total']:.0%}" + (f" ({k} seed{'s' if k > 1 else ''})" if k != usual else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _slots(report: dict, method: str, actions: list[str], seeds: dict[str, set] | None = None):
    """(total hits, action hits, subject hits, clusters) of ``method`` over ``actions``, slot by
    slot; with ``seeds`` ({action: learning seeds}) only the slots of those seeds."""
    tot, act, sub, clusters = [], [], [], []
    for a in actions:
        r = report["results"][a][method]
        slot_seeds = r.get("seeds", [0] * len(r["hits"]))
        for (x, y), sd in zip(r["hits"], slot_seeds):
            if seeds is None or sd in seeds[a]:
                tot.append(int(x and y))
                act.append(y)
                sub.append(x)
                clusters.append(f"{a}/{sd}")
    return tot, act, sub, clusters


def _leak_slots(report: dict, method: str, actions: list[str]) -> tuple[list[int], list[str]]:
    """(context leak 0/1, cluster) of ``method``'s counted v3 slots over ``actions``."""
    x, clusters = [], []
    for a in actions:
        r = report["results"][a][method]
        for row, sd in zip(r.get("leaks", []), r.get("seeds", [])):
            if row[2] is not None:
                x.append(int(row[2]))
                clusters.append(f"{a}/{sd}")
    return x, clusters


def _animal_counts(report: dict, method: str, actions: list[str]) -> tuple[int, int]:
    """(animals drawn human, animal slots) of ``method`` pooled over ``actions``."""
    runs = [report["results"][a][method] for a in actions]
    return sum(r.get("animals_drawn_human", 0) for r in runs), sum(r.get("animal_slots", 0) for r in runs)


def _shared_seeds(report: dict, method: str, reference: str, actions: list[str]) -> dict[str, set]:
    """Per action both methods ran, the learning seeds both hold (the slots a paired test may use)."""
    shared = {}
    for a in actions:
        by = report["results"][a]
        if reference in by:
            both = set(by[method].get("seeds", [0])) & set(by[reference].get("seeds", [0]))
            if both:
                shared[a] = both
    return shared


def compare_table(report: dict, reference: str = "adi", n_boot: int = 2000) -> str:
    """Markdown: per method, pooled over the actions it was run on, accuracies with 95%
    bootstrap intervals (learning seeds within actions resampled first, then images), and
    the paired comparison with ``reference`` on the same image slots: total-accuracy
    difference with its interval, paired-bootstrap p and exact McNemar p."""
    from evaluate.paired import bootstrap_ci, mcnemar_exact, paired_bootstrap

    methods_: list[str] = []
    for by in report["results"].values():
        methods_ += [m for m in by if m not in methods_]
    ref_actions = [a for a, by in report["results"].items() if reference in by]
    ci = lambda x, cl: "{:.1%} [{:.1%}, {:.1%}]".format(*bootstrap_ci(x, cl, n_boot))  # noqa: E731
    ctx = has_context_leaks(report)
    lines = ["| method | total [95% CI] | action | subject | animals drawn human |" + (" context leak [95% CI] |" if ctx else "")
             + f" images | total - {reference} [95% CI] | p (bootstrap) | p (McNemar) |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if ctx else "")]
    for m in methods_:
        actions = [a for a in report["results"] if m in report["results"][a]]
        tot, act, sub, cl = _slots(report, m, actions)
        leak, leak_n = _animal_counts(report, m, actions)
        row = f"| {m} | {ci(tot, cl)} | {ci(act, cl)} | {ci(sub, cl)} | {leak / max(1, leak_n):.1%} |"
        if ctx:
            x, xcl = _leak_slots(report, m, actions)
            row += f" {ci(x, xcl)} |" if x else " - |"
        row += f" {len(tot)} |"
        # paired on the slots both hold: the actions both ran, the learning seeds both ran there
        seeds = _shared_seeds(report, m, reference, actions)
        shared = list(seeds)
        if m != reference and shared:
            tot_m, _, _, cl_m = _slots(report, m, shared, seeds)
            ref_tot = _slots(report, reference, shared, seeds)[0]
            pb, mc = paired_bootstrap(tot_m, ref_tot, cl_m, n_boot), mcnemar_exact(tot_m, ref_tot)
            where = "" if len(shared) == len(ref_actions) == len(actions) else f" ({len(shared)} actions)"
            if len(tot_m) < len(tot):
                where += f" ({len(tot_m)} paired images)"
            row += f" {pb['diff']:+.1%} [{pb['low']:+.1%}, {pb['high']:+.1%}]{where} | {pb['p']:.3f} | {mc['p']:.3f} |"
        else:
            row += " - | - | - |"
        lines.append(row)
    return "\n".join(lines)


def write_tables(report: dict, out: Path) -> None:
    """``table.md`` (per action and method, then the per-method means) and ``table.csv`` under ``out``."""
    import csv

    (out / "table.md").write_text(table(report) + "\n\nMean over actions:\n\n" + summary_table(report) + "\n"
                                  + _compare_section(report))
    ctx = has_context_leaks(report)
    leak_cols = ["scene_leak", "outfit_leak", "context_leak"] if ctx else []  # v3 only: v2b's columns stay as they were
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["action", "method", "action_acc", "subject_acc", "total_acc", "human_on_animals", "n"] + leak_cols)
        for action, by in report["results"].items():
            for method, r in by.items():
                w.writerow([action, method, round(r["action"], 4), round(r["subject"], 4), round(r["total"], 4),
                            round(r.get("human_on_animals", float("nan")), 4), r["n"]]
                           + [round(r.get(k, float("nan")), 4) for k in leak_cols])


def reference_method(report: dict) -> str:
    """The method the paired tests compare against: ADI as it is (plain ``adi``, or ``adi``
    with only its learning rate or steps set, not an ablation), else the first method."""
    specs = list(dict.fromkeys(m for by in report["results"].values() for m in by))
    for m in specs:
        name, options = parse_method_spec(m)
        if name == "adi" and set(options) <= {"lr", "steps"}:
            return m
    return specs[0]


def _compare_section(report: dict) -> str:
    if not any("hits" in r for by in report["results"].values() for r in by.values()):
        return ""  # a report from before per-image hits were kept
    ref = reference_method(report)
    return f"\nPooled over actions, with intervals and paired tests against {ref}:\n\n" + compare_table(report, ref) + "\n"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ActionBenchError(f"--learn-seeds {text!r}: give comma-separated integers, e.g. 0,1,2") from None


def cmd_demo(args) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise ActionBenchError(f"--threads {args.threads}: give a count of at least 1")
        torch.set_num_threads(args.threads)
    actions = world_actions(args.world) if args.actions == "all" else tuple(args.actions.split(","))
    methods_ = args.methods or ",".join(DEMO_METHODS_V3 if args.world == "v3" else DEMO_METHODS)
    s = DemoSettings(actions=actions, methods=tuple(methods_.split(",")), steps=args.steps, lr=args.lr,
                     n=args.n, sample_steps=args.sample_steps, seed=args.seed, device=args.device,
                     learn_seeds=_seeds(args.learn_seeds) if args.learn_seeds else (args.seed,), images_seen=args.images_seen or None,
                     world=args.world, model=args.model)
    for spec in s.methods:  # fail before any learning on a bad method spec or option
        demo_config(spec, s)
    report = run_demo(s, Path(args.out), resume=args.resume)
    write_tables(report, Path(args.out))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(table(report))
        if len(report["results"]) > 1:
            print("\nMean over actions:\n" + summary_table(report))
        print(_compare_section(report))
        print(f"grids, images and demo.json in {args.out} ({report['seconds']['this_run']:.0f} s this run, "
              f"{report['seconds']['total']:.0f} s of learning and judging in all)")


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="learn a hard-to-name action on the ActionWorld model and judge it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--actions", default=DEMO_ACTION, help=f"comma-separated World-ActionBench actions, or 'all' (default {DEMO_ACTION})")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated methods, each NAME or NAME:KEY=VALUE:... for options such as ADI's ablations "
                        f"(adi:mask=none, adi:layerwise=false, adi:beta=0.4) (default {','.join(DEMO_METHODS)}; "
                        f"on v3 {','.join(DEMO_METHODS_V3)})")
    p.add_argument("--world", default="v3", choices=tuple(WORLD_MODELS),
                   help="the ActionWorld version (default v3: textured contexts, no benchmark action named, a context-leak "
                        "column; v2b: the archived tables' world)")
    p.add_argument("--model", default=None, help="the base model (default: the world's: " +
                   ", ".join(f"{w} {m}" for w, m in WORLD_MODELS.items()) + ")")
    p.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"training steps of every learning method when --images-seen is 0 (default {DEMO_STEPS})")
    p.add_argument("--lr", type=float, default=DEMO_LR, help=f"learning rate of the token methods; weight tuners keep their paper's (default {DEMO_LR})")
    p.add_argument("--n", type=int, default=4, help="images per subject (default 4)")
    p.add_argument("--sample-steps", type=int, default=25, help="DDIM steps (default 25)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed, and the learning seed unless --learn-seeds is given")
    p.add_argument("--learn-seeds", default=None, help="comma-separated learning seeds, e.g. 0,1,2: one identifier per seed and method")
    p.add_argument("--images-seen", type=int, default=DEMO_IMAGES_SEEN,
                   help="equal budget: every learner sees this many exemplar images (steps = ceil(N / its batch size)); "
                        f"0 to give every learner --steps instead (default {DEMO_IMAGES_SEEN})")
    p.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    p.add_argument("--resume", action="store_true",
                   help="add to the demo.json in --out (same settings) and skip the runs it already holds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default torch's, one per core); give 1 when another job shares the "
                        "cores: torch's threads then wait on each other (docs/performance.md)")
    p.set_defaults(func=cmd_demo)
