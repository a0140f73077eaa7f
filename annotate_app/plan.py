"""A rater's queue, read from the run folder: the bridge from files to :mod:`evaluate.study`.

Open mode (no ``raters.json``): every image, in the rater's shuffled order, nothing else
(the app as it was for one local user). Invite mode: the rater's share of the images
(K per image, ``study.json``), gold items from the run's benchmark folder, attention checks,
and images given to them because the first K raters disagreed. Kept out of ``app.py`` so
the tests and the export compute the very queue the app shows.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from annotate_app.store import rating_order
from evaluate.study import Design, Item, assign, attention_checks, extra_assignments, gold_items, interleave, n_checks


def benchmark_folder(run_dir: str | Path) -> Path | None:
    """The benchmark folder ``run.yaml`` names, where it is on this machine (None if nowhere).

    A relative path is relative to where the run was started: here, or the project root
    above ``results/<run>``."""
    import yaml

    run_yaml = Path(run_dir) / "run.yaml"
    config = (yaml.safe_load(run_yaml.read_text()) or {}) if run_yaml.exists() else {}
    bench = Path(config.get("benchmark", "../shared/ActionBench"))
    candidates = [bench] if bench.is_absolute() else [bench, Path(run_dir).resolve().parents[1] / bench]
    return next((c for c in candidates if c.is_dir()), None)


@lru_cache(maxsize=16)
def _exemplar_table(bench: str, person: str) -> dict[str, tuple[tuple[str, str], ...]]:
    from actionbench.bench import load_action

    root = Path(bench)
    world = (root / "world.json").exists()
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "text.json").exists()):
        try:
            action = load_action(folder, verify_images=False)
        except Exception:  # a folder that is not an action (or a broken one) just gives no gold items
            continue
        rows = []
        for e in action.exemplars:
            # World-ActionBench's templates name the rendered character exactly ("a boy {} in a park")
            subject = e.template.split("{}")[0].strip() if world else ""
            rows.append((str(e.image_path), subject or person))
        out[action.name] = tuple(rows)
    return out


def exemplar_table(run_dir: str | Path, subjects: list[str] = ()) -> dict[str, list[tuple[str, str]]]:
    """action -> [(exemplar path, the subject it shows)] for every action of the run's benchmark.

    An ActionBench photo shows "a person" (capitalised like the run's subjects, "A person",
    so the gold page reads like the others)."""
    bench = benchmark_folder(run_dir)
    if bench is None:
        return {}
    capital = sum(s[:1].isupper() for s in subjects) > len(subjects) / 2
    table = _exemplar_table(str(bench.resolve()), "A person" if capital else "a person")
    return {a: list(rows) for a, rows in table.items()}


def animal_subjects(subjects: list[str]) -> list[str]:
    """The run's subjects that are surely not a person: a gold photo named as one is a "no"."""
    from actionbench.catalog import subjects as catalog
    from actionbench.world import render

    animals = {s.name.lower() for s in catalog() if s.category == "animal"}
    animals |= {render.subject_phrase(a).lower() for a in render.ANIMALS}
    return sorted({s for s in subjects if s.lower() in animals})


def image_items(manifest) -> list[Item]:
    return [Item(r.image_id, "image", str(r.path), str(r.action), str(r.subject))
            for r in manifest[["image_id", "path", "action", "subject"]].itertuples(index=False)]


def open_queue(manifest, rater: str) -> list[Item]:
    """Open mode: every image, in the rater's order."""
    by_id = {it.item_id: it for it in image_items(manifest)}
    return [by_id[i] for i in rating_order(list(by_id), rater)]


def complete_answers(ratings) -> dict[str, dict[str, tuple[bool, bool]]]:
    """image -> {rater: (action_ok, subject_ok)} over complete ratings."""
    r = ratings.dropna(subset=["action_ok", "subject_ok"])
    out: dict[str, dict[str, tuple[bool, bool]]] = {}
    for row in r.itertuples(index=False):
        out.setdefault(row.image_id, {})[row.rater] = (bool(row.action_ok), bool(row.subject_ok))
    return out


def study_queue(run_dir: str | Path, manifest, ratings, rater: str, raters: list[str], design: Design) -> list[Item]:
    """Invite mode: images given to this rater after a disagreement first, then their share
    with gold items and attention checks spread through it. ``raters``: the active raters."""
    images = image_items(manifest)
    by_id = {it.item_id: it for it in images}
    ids = list(by_id)
    assignment = assign(ids, raters, design.raters_per_image, design.seed)
    mine = [by_id[i] for i in rating_order(assignment.get(rater, []), rater)]
    extras = extra_assignments(assignment, complete_answers(ratings[ratings.image_id.isin(by_id)]), raters,
                               design.raters_per_image, design.seed).get(rater, [])
    subjects = sorted(set(manifest.subject.astype(str)))
    actions = list(dict.fromkeys(manifest.action.astype(str)))
    gold = gold_items(exemplar_table(run_dir, subjects), actions, design.gold_per_rater if mine else 0, rater,
                      design.seed, animal_subjects(subjects))
    checks = attention_checks(images, n_checks(len(mine), design), rater, design.seed)
    extra_items = [Item(i, "image", by_id[i].path, by_id[i].action, by_id[i].subject, extra=True) for i in extras]
    return extra_items + interleave(mine, gold + checks, rater, design.seed)
