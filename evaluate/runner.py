"""The benchmark runner: methods x actions x subjects -> images, verdicts, report.

For each (method, action) unit: learn the action (or reuse ``learned/<label>/<action>``,
or a file the config points to), then generate K images for every subject, then let the
judges look at them. Work already on disk is skipped, so a rerun resumes. Under
``accelerate launch`` (or ``torchrun``) units are dealt round-robin to the processes, each
on its own GPU and writing its own shards; the last process to finish merges the shards
and writes the report.

    >>> from evaluate import runner
    >>> run_dir = runner.run(RunConfig.from_yaml("tiny"))
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from actionbench.errors import ActionBenchError

from .config import MethodEntry, RunConfig
from .manifest import (
    ImageRecord,
    append_jsonl,
    image_id,
    manifest_shard,
    read_manifest,
    read_verdicts,
    record_dict,
    slug,
    verdict_shard,
    write_merged,
)


@dataclass
class Unit:
    """One method on one action: a learned file and K images for each subject."""

    entry: MethodEntry
    action: str


@dataclass
class Processes:
    """Which share of the work this process does (one process without a launcher)."""

    rank: int = 0
    world: int = 1
    device: str | None = None


def current_processes() -> Processes:
    """Rank, number of processes and device from the launcher's environment.

    ``accelerate launch`` and ``torchrun`` both set RANK, WORLD_SIZE and LOCAL_RANK; each
    process takes the GPU of its local rank. No process group is needed: processes never
    talk, they write their own shards (see ``finish_process``).
    """
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    return Processes(rank, world, device)


def resolve_subjects(config: RunConfig) -> list[str]:
    from actionbench.catalog import subjects

    known = [s.name for s in subjects()]
    if config.subjects is None:
        return known
    return list(config.subjects)


def load_run_benchmark(config: RunConfig) -> dict:
    from actionbench.bench import load_benchmark

    sets = load_benchmark(config.benchmark, verify_images=False)
    if config.actions is None:
        return sets
    missing = [a for a in config.actions if a not in sets]
    if missing:
        raise ActionBenchError(f"actions not in {config.benchmark}: {', '.join(missing)} (there: {', '.join(sets)})")
    return {a: sets[a] for a in config.actions}


def units(config: RunConfig, actions: list[str]) -> list[Unit]:
    return [Unit(entry, action) for entry in config.methods for action in actions]


def load_model(config: RunConfig, device: str | None):
    """The pipeline named by ``config.model`` (``tiny``: a small random pipeline, for tests)."""
    import torch

    device = device or config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.dtype]
    if device == "cpu":
        dtype = torch.float32
    if config.model == "tiny":
        from actionbench.models import PipelineSpec, build_pipeline

        pipe = build_pipeline(PipelineSpec())
        pipe.model_name = "tiny"
        return pipe.to(device)
    from actionbench.models import load_pipeline

    return load_pipeline(config.model, device, dtype)


def learned_path(run_dir: Path, entry: MethodEntry, action: str) -> Path:
    if entry.learned:
        return Path(entry.learned.format(action=action, label=entry.label, method=entry.method))
    return run_dir / "learned" / entry.label / f"{action}.safetensors"


def learn_or_load(pipe, run_dir: Path, entry: MethodEntry, action_set, log=print):
    """The learned action for a unit: from disk when there, else learned (resuming a checkpoint)."""
    import methods

    path = learned_path(run_dir, entry, action_set.name)
    if path.exists():
        return methods.LearnedAction.load(path), 0.0
    if entry.learned:
        raise ActionBenchError(f"{path}: learned-action file for {entry.label} / {action_set.name} not found")
    cls = methods.get_method(entry.method)
    config = cls.Config.from_dict(entry.config, where=f"methods[{entry.label}].config")
    log(f"learn {entry.label} on {action_set.name} ({config.steps} steps)")
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    learned = methods.learn(pipe, action_set, entry.method, config, out=path, work_dir=run_dir / "cache" / entry.label,
                            resume=True, progress=False)
    elapsed = time.perf_counter() - t0
    append_jsonl(run_dir / "timing.jsonl", {"method": entry.label, "action": action_set.name, "learn_s": round(elapsed, 3)})
    return learned, elapsed


def generate_unit(pipe, run_dir: Path, config: RunConfig, unit: Unit, learned, subjects: list[str], done: set[str],
                  shard: Path) -> int:
    """Generate the unit's missing images; returns how many were made."""
    import methods

    made = 0
    for subject in subjects:
        todo = [k for k in range(config.images_per_pair) if image_id(unit.entry.label, unit.action, subject, k) not in done]
        if not todo:
            continue
        t0 = time.perf_counter()
        # Image k uses seed + k: the same seeds for every method and subject (paired comparisons).
        # A whole subject is one batched call; a partly done one (a killed run) is finished image by image.
        if todo == list(range(config.images_per_pair)):
            images = methods.generate(pipe, learned, f"{subject} {{}}", n=len(todo), seed=config.seed,
                                      steps=config.steps, guidance=config.guidance)
        else:
            images = [methods.generate(pipe, learned, f"{subject} {{}}", n=1, seed=config.seed + k, steps=config.steps,
                                       guidance=config.guidance)[0] for k in todo]
        per_image = (time.perf_counter() - t0) / len(todo)
        for k, image in zip(todo, images):
            rel = Path("images") / unit.entry.label / unit.action / f"{slug(subject)}_{k}.png"
            (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            tmp = run_dir / rel.with_suffix(".tmp.png")
            image.save(tmp)
            tmp.replace(run_dir / rel)  # the record is written only once its image is complete on disk
            record = ImageRecord(image_id(unit.entry.label, unit.action, subject, k), unit.entry.label, unit.entry.method,
                                 unit.action, subject, k, config.seed + k, rel.as_posix(),
                                 methods.fill_prompt(f"{subject} {{}}", learned.fill), round(per_image, 3))
            append_jsonl(shard, record_dict(record))
            made += 1
    return made


def judge_images(run_dir: Path, config: RunConfig, judge_names: list[str], action_sets: dict, subjects: list[str],
                 rank: int = 0, image_ids: set[str] | None = None, device: str = "cpu", log=print,
                 strict: bool = False) -> dict[str, int]:
    """Run each judge over the run's images it has not judged yet; returns counts per judge.

    An image that cannot be read is logged and left unjudged (the next pass tries it again:
    regenerate or replace the file), so one corrupt file does not stop the pass. ``strict``:
    a judge that cannot be built raises instead of being skipped."""
    from actionbench.bench import open_image

    from .judges import Item, JudgeContext, make_judge

    manifest = read_manifest(run_dir)
    if image_ids is not None:
        manifest = manifest[manifest.image_id.isin(image_ids)]
    verdicts = read_verdicts(run_dir)
    counts = {}
    for name in judge_names:
        judged = set(verdicts.loc[verdicts.judge == name, "image_id"])
        todo = manifest[~manifest.image_id.isin(judged)]
        if todo.empty:
            counts[name] = 0
            continue
        try:
            context = JudgeContext(action_sets, tuple(subjects), device)
            judge = make_judge(name, context, **config.judge_options.get(name, {}))
        except ActionBenchError as err:
            if strict:
                raise
            log(f"judge {name} skipped: {err}")
            counts[name] = 0
            continue
        shard = verdict_shard(run_dir, name, rank)
        done = 0
        for start in range(0, len(todo), 16):
            images, items = [], []
            for r in todo.iloc[start:start + 16].itertuples():
                try:
                    images.append(open_image(run_dir / r.path))
                except ActionBenchError as err:
                    log(f"judge {name}: {err}; left unjudged (regenerate or replace the file, then rerun)")
                    continue
                items.append(Item(r.image_id, r.action, r.subject))
            if items:
                for verdict in judge.judge(images, items):
                    append_jsonl(shard, verdict.to_dict())
            done += len(items)
        counts[name] = done
    return counts


def prepare_run_dir(config: RunConfig) -> Path:
    """Create the run folder, or check that an existing one was made by the same config."""
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "run.yaml"
    mine = config.to_dict()
    mine.pop("out", None)
    if saved.exists():
        old = yaml.safe_load(saved.read_text()) or {}
        old.pop("out", None)
        keys = ("model", "methods", "images_per_pair", "steps", "guidance", "seed")
        changed = [k for k in keys if old.get(k) != mine.get(k)]
        if changed:
            raise ActionBenchError(
                f"{run_dir} holds a run with other settings ({', '.join(changed)} differ); use another `out` folder"
            )
    return run_dir


def run(config: RunConfig, pipe=None, processes: Processes | None = None, log=print) -> Path:
    """Run (or resume) the whole protocol; returns the run folder.

    ``pipe``: an already loaded pipeline (else ``config.model`` is loaded).
    """
    procs = processes or current_processes()
    run_dir = prepare_run_dir(config)
    stale = run_dir / "processes" / f"done-{procs.rank:03d}-of-{procs.world:03d}"
    stale.unlink(missing_ok=True)
    if procs.rank == 0:  # written whole, then renamed: other processes never read half a file
        tmp = run_dir / f"run.yaml.{os.getpid()}.tmp"
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        os.replace(tmp, run_dir / "run.yaml")
    action_sets = load_run_benchmark(config)
    subjects = resolve_subjects(config)
    all_units = units(config, list(action_sets))
    mine = [u for i, u in enumerate(all_units) if i % procs.world == procs.rank]
    done = set(read_manifest(run_dir).image_id)
    shard = manifest_shard(run_dir, procs.rank)
    need = [u for u in mine if any(image_id(u.entry.label, u.action, s, k) not in done
                                   for s in subjects for k in range(config.images_per_pair))]
    log(f"process {procs.rank}/{procs.world}: {len(mine)} units, {len(mine) - len(need)} already done")
    if need:
        pipe = pipe if pipe is not None else load_model(config, procs.device)
        for unit in need:
            learned, _ = learn_or_load(pipe, run_dir, unit.entry, action_sets[unit.action], log)
            made = generate_unit(pipe, run_dir, config, unit, learned, subjects, done, shard)
            log(f"{unit.entry.label} / {unit.action}: {made} images")
    if config.judges:
        my_ids = {image_id(u.entry.label, u.action, s, k) for u in mine for s in subjects
                  for k in range(config.images_per_pair)}
        device = procs.device or config.device or "cpu"
        counts = judge_images(run_dir, config, config.judges, action_sets, subjects, procs.rank, my_ids, device, log)
        log("judged: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    finish_process(run_dir, config, action_sets, procs)
    return run_dir


def finish_process(run_dir: Path, config: RunConfig, action_sets: dict, procs: Processes) -> None:
    """Mark this process done; the process that finds every process done merges and reports.

    No barrier (a fast process would time out waiting hours for a slow one): the last
    process to finish always sees every done-mark, so it merges everything. A mark left by
    an earlier launch can only cause an extra, early merge, which the last one redoes.
    """
    marks = run_dir / "processes"
    marks.mkdir(exist_ok=True)
    (marks / f"done-{procs.rank:03d}-of-{procs.world:03d}").write_text(f"{time.time()}\n")
    if all((marks / f"done-{r:03d}-of-{procs.world:03d}").exists() for r in range(procs.world)):
        finish(run_dir, config, action_sets)


def time_per_method(run_dir: Path, manifest) -> dict:
    """Seconds spent per method: learning (all actions) and generating (all images), as recorded."""
    learn: dict[str, float] = {}
    timing = run_dir / "timing.jsonl"
    if timing.exists():
        for line in timing.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                learn[rec["method"]] = learn.get(rec["method"], 0.0) + rec["learn_s"]
    out = {}
    for method, g in manifest.groupby("method", sort=False):
        gen = float(g.time_s.sum())
        out[method] = {"learn_s": round(learn.get(method, 0.0), 1), "generate_s": round(gen, 1),
                       "per_image_s": round(gen / max(len(g), 1), 3), "images": int(len(g))}
    return out


def finish(run_dir: Path, config: RunConfig, action_sets: dict) -> None:
    """Merge shards and write the report (process 0, after every process is done)."""
    from .report import write_report

    write_merged(run_dir)
    write_report(run_dir, action_sets)
    manifest = read_manifest(run_dir)
    summary = {"config": config.name, "images": int(len(manifest)), "time_per_method_s": time_per_method(run_dir, manifest)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
