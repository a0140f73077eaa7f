"""The design of a human study: who rates which image, gold items, attention checks, rater quality.

Why a design: the paper's protocol has ~5,900 images; with several raters nobody should have
to rate all of them, yet every image needs the same number of ratings (K), every rater a
fair share, and the study needs a way to tell a careful rater from one clicking at random
(gold items with known answers, attention checks). Everything here is a pure, seeded
function of its inputs, so the app, the export and the tests compute the same queue from
the same run folder, and a rater who comes back gets the same items in the same order. The
files (``raters.json``, ``study.json``) are read by ``annotate_app``; this module never
touches them.

Gold items are benchmark exemplars, whose answers are known: an exemplar is a "yes" for its
own action and a "no" for another one, and its subject is a person (ActionBench photos) or
the rendered character (World-ActionBench: exact by construction). Their answers and the
attention checks' answers never go to the ``ratings`` table, so they cannot enter the
accuracy tables (:mod:`evaluate.ratings` keeps them in the ``checks`` table).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field

from actionbench.errors import ActionBenchError

KINDS = ("image", "gold", "attention")

# Action pairs a rater may honestly call the same (one raised hand near the head; hands raised
# before the face; sitting on a chair / cross-legged / low): never a gold "no" for each other.
CONFUSABLE = {frozenset(p) for p in (("gesture", "salute"), ("gesture", "pray"), ("meditate", "sit"), ("sit", "squat"),
                                      ("cheer", "gesture"))}

# Attention checks: (expected action answer, expected subject answer) -> the instruction shown.
INSTRUCTIONS = {
    (False, False): "For this image, answer No to both questions.",
    (True, True): "For this image, answer Yes to both questions.",
    (True, False): "For this image, answer Yes to the first question and No to the second.",
    (False, True): "For this image, answer No to the first question and Yes to the second.",
}


@dataclass(frozen=True)
class Design:
    """A study's settings (``study.json``): K raters per image (None: every rater rates every
    image), gold items per rater, one attention check per ``checks_every`` images (at least
    ``min_checks``), and the seed of every random choice."""

    raters_per_image: int | None = None
    gold_per_rater: int = 4
    checks_every: int = 50
    min_checks: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.raters_per_image is not None and self.raters_per_image < 1:
            raise ActionBenchError(f"raters per image must be at least 1 (got {self.raters_per_image})")
        if self.gold_per_rater < 0 or self.checks_every < 1 or self.min_checks < 0:
            raise ActionBenchError("gold per rater and min checks must be >= 0, checks every >= 1")


@dataclass(frozen=True)
class Item:
    """One page a rater answers: a run image, a gold item or an attention check.

    ``expected`` is the known answer pair (gold and attention checks only); ``hide`` is an
    exemplar left out of the page's exemplar strip (a gold photo must not also appear there).
    """

    item_id: str
    kind: str
    path: str  # a run image: relative to the run folder; gold: the exemplar's own path
    action: str  # whose exemplars are shown
    subject: str  # the subject named on the page
    expected: tuple[bool, bool] | None = None
    instruction: str | None = None
    hide: str | None = None
    extra: bool = field(default=False, compare=False)  # an image given to one more rater after a disagreement


def _hash(*parts) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16], 16)


# -- who rates which image ---------------------------------------------------------------


def assign(image_ids: list[str], raters: list[str], k: int | None = None, seed: int = 0) -> dict[str, list[str]]:
    """rater -> the images they rate: each image to ``k`` distinct raters, shares within one.

    Images are taken in a seeded order, each given to the ``k`` raters with the fewest images
    so far (ties broken at random, seeded), which keeps every share within one of the others
    and mixes who rates with whom (a fixed rotation would pair the same raters forever, and
    agreement needs overlapping pairs). ``k`` None, or at least the number of raters: every
    rater rates every image. Raters are sorted first, so the order they were invited in
    does not matter.
    """
    raters = sorted(set(raters))
    images = sorted(set(image_ids))
    if not raters:
        return {}
    if k is None or k >= len(raters):
        return {r: list(images) for r in raters}
    if k < 1:
        raise ActionBenchError(f"raters per image must be at least 1 (got {k})")
    rng = random.Random(f"assign:{seed}")
    rng.shuffle(images)
    load = dict.fromkeys(raters, 0)
    out: dict[str, list[str]] = {r: [] for r in raters}
    for image in images:
        ties = {r: rng.random() for r in raters}
        for r in sorted(raters, key=lambda r: (load[r], ties[r]))[:k]:
            out[r].append(image)
            load[r] += 1
    return {r: sorted(v) for r, v in out.items()}


def disagrees(answers: dict[str, tuple[bool, bool]]) -> bool:
    """Do these raters' (action, subject) answers differ on either question?"""
    return any(len({a[q] for a in answers.values()}) > 1 for q in (0, 1))


def extra_assignments(assignment: dict[str, list[str]], answers: dict[str, dict[str, tuple[bool, bool]]],
                      raters: list[str], k: int | None, seed: int = 0) -> dict[str, list[str]]:
    """rater -> images given to them because the first K raters disagree on them.

    ``answers``: image -> {rater: (action_ok, subject_ok)}, complete ratings only. An image
    needs one more rater when exactly K ratings are in, every rater assigned to it has
    answered, and they disagree on a question. The extra rater is the one among the active
    ``raters`` not assigned to it and not having rated it with the highest seeded hash of
    (image, rater): a choice that does not move while the image waits for them (their half
    answer changes nothing), and that ends once they have answered (K + 1 ratings).
    Without K everybody rates everything, so nobody is left to ask.
    """
    out: dict[str, list[str]] = {r: [] for r in raters}
    if k is None or k >= len(raters):
        return out
    assigned: dict[str, set[str]] = {}
    for r, ids in assignment.items():
        for i in ids:
            assigned.setdefault(i, set()).add(r)
    for image in sorted(answers):
        given = answers[image]
        if len(given) != k or not assigned.get(image, set()) <= set(given) or not disagrees(given):
            continue
        eligible = [r for r in raters if r not in given and r not in assigned.get(image, ())]
        if eligible:
            out[max(eligible, key=lambda r: _hash("extra", seed, image, r))].append(image)
    return out


# -- gold items and attention checks --------------------------------------------------------


def gold_items(exemplars: dict[str, list[tuple[str, str]]], actions: list[str], n: int, rater: str, seed: int = 0,
               wrong_subjects: list[str] = ()) -> list[Item]:
    """``n`` gold items for one rater, from the benchmark's exemplars (never copied anywhere).

    ``exemplars``: action -> [(image path, the subject it shows)] for every benchmark action;
    ``actions``: the run's actions (the pages a gold item can be shown on). Kinds, in turn:
    ``own`` (an exemplar of action A on A's page: yes / yes; the photo is hidden from the
    strip), ``other`` (an exemplar of B on A's page, B not confusable with A: no / yes) and,
    when the run has animal subjects, ``subject`` (an exemplar of A named as an animal:
    yes / no). No photo comes twice for one rater.
    """
    pages = [a for a in actions if len(exemplars.get(a, ())) >= 2]
    if n <= 0 or not pages:
        return []
    rng = random.Random(f"gold:{seed}:{rater}")
    kinds = ["own", "other"] + (["subject"] if wrong_subjects else [])
    used: set[str] = set()
    out = []
    for _ in range(n * 4):  # a few spare tries: small benchmarks run out of unused photos
        if len(out) == n:
            break
        kind = kinds[len(out) % len(kinds)]
        page = rng.choice(pages)
        source = page
        if kind == "other":
            others = [b for b in sorted(exemplars) if b != page and exemplars[b] and frozenset((page, b)) not in CONFUSABLE]
            if not others:
                continue
            source = rng.choice(others)
        fresh = [e for e in exemplars[source] if e[0] not in used]
        if not fresh:
            continue
        path, subject = rng.choice(fresh)
        used.add(path)
        stem = path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if kind == "own":
            out.append(Item(f"gold/own/{page}/{stem}", "gold", path, page, subject, (True, True), hide=path))
        elif kind == "other":
            out.append(Item(f"gold/other/{page}/{source}/{stem}", "gold", path, page, subject, (False, True)))
        else:
            wrong = rng.choice(list(wrong_subjects))
            out.append(Item(f"gold/subject/{page}/{stem}/{wrong}", "gold", path, page, wrong, (True, False), hide=path))
    return out


def n_checks(n_images: int, design: Design) -> int:
    """Attention checks in a queue of ``n_images``: at least ``min_checks``, one per ``checks_every``."""
    return 0 if n_images == 0 else max(design.min_checks, math.ceil(n_images / design.checks_every))


def attention_checks(images: list[Item], n: int, rater: str, seed: int = 0) -> list[Item]:
    """``n`` attention checks: a run image with an instruction that fixes both answers.

    The expected answers go through the four yes/no patterns in a seeded order, so any two
    checks catch a rater who always says yes and one who always says no.
    """
    if n <= 0 or not images:
        return []
    rng = random.Random(f"attention:{seed}:{rater}")
    patterns = list(INSTRUCTIONS)
    rng.shuffle(patterns)
    out = []
    for j in range(n):
        base = rng.choice(images)
        expected = patterns[j % len(patterns)]
        out.append(Item(f"attention/{j}", "attention", base.path, base.action, base.subject, expected,
                        instruction=INSTRUCTIONS[expected]))
    return out


def interleave(order: list[Item], specials: list[Item], rater: str, seed: int = 0) -> list[Item]:
    """The rater's queue: their images in order, gold items and checks spread evenly among
    them at seeded positions (one in each of ``len(specials)`` equal stretches)."""
    if not specials:
        return list(order)
    rng = random.Random(f"interleave:{seed}:{rater}")
    specials = list(specials)
    rng.shuffle(specials)
    m, n = len(specials), len(order)
    slots = [(j + rng.uniform(0.1, 0.9)) * n / m for j in range(m)]
    keyed = [(float(i), 0, it) for i, it in enumerate(order)] + [(s, 1, it) for s, it in zip(slots, specials)]
    return [it for _, _, it in sorted(keyed, key=lambda x: (x[0], x[1]))]


def shown_exemplars(paths: list[str], item: Item) -> list[str]:
    """The exemplar strip of a page in a study with gold items: one exemplar fewer on *every*
    page (the gold photo on its own page, a seeded one elsewhere), so a gold page cannot be
    told by its strip."""
    if len(paths) < 2:
        return list(paths)
    hide = item.hide if item.hide in paths else paths[_hash("strip", item.item_id) % len(paths)]
    return [p for p in paths if p != hide]


# -- rater quality ---------------------------------------------------------------------------


def check_correct(expected: tuple[bool, bool], given: tuple[bool | None, bool | None]) -> bool | None:
    """A gold item or attention check is right when both answers match; None while unanswered."""
    if None in given:
        return None
    return tuple(bool(g) for g in given) == tuple(expected)


def rater_quality(ratings, checks, raters: list[str] | None = None):
    """One row per rater: images rated, gold accuracy, attention checks passed, and raw
    agreement with the other raters (per question: over the images this rater and at least
    one other answered, the share of the others' answers that match, averaged over images).

    ``ratings``: rater, image_id, action_ok, subject_ok (the ``ratings`` table);
    ``checks``: rater, item_id, kind, expected_action, expected_subject, action_ok, subject_ok.
    """
    import numpy as np
    import pandas as pd

    r = ratings.dropna(subset=["action_ok", "subject_ok"])
    names = sorted(set(raters or []) | set(r.rater) | set(checks.rater))
    c = checks.dropna(subset=["action_ok", "subject_ok"]).copy()
    c["correct"] = (c.action_ok.astype(bool) == c.expected_action.astype(bool)) & \
                   (c.subject_ok.astype(bool) == c.expected_subject.astype(bool))
    per_q = {}
    for q in ("action_ok", "subject_ok"):
        wide = r.pivot_table(index="image_id", columns="rater", values=q, aggfunc="first").astype(float)
        per_q[q] = wide
    rows = []
    for name in names:
        g = c[(c.rater == name) & (c.kind == "gold")]
        a = c[(c.rater == name) & (c.kind == "attention")]
        row = {"rater": name, "rated": int((r.rater == name).sum()),
               "gold_answered": len(g), "gold_right": int(g.correct.sum()),
               "gold_accuracy": float(g.correct.mean()) if len(g) else float("nan"),
               "checks_answered": len(a), "checks_passed": int(a.correct.sum()),
               "checks_failed": int((~a.correct).sum())}
        shared = 0
        for q, wide in per_q.items():
            agree = []
            if name in wide.columns:
                mine = wide[name]
                others = wide.drop(columns=[name])
                for image in mine.dropna().index:
                    o = others.loc[image].dropna().values
                    if len(o):
                        agree.append(float(np.mean(o == mine[image])))
            row[f"agreement_{q[:-3]}"] = float(np.mean(agree)) if agree else float("nan")
            shared = max(shared, len(agree))
        row["shared_images"] = shared
        rows.append(row)
    return pd.DataFrame(rows, columns=["rater", "rated", "gold_answered", "gold_right", "gold_accuracy", "checks_answered",
                                       "checks_passed", "checks_failed", "agreement_action", "agreement_subject",
                                       "shared_images"])
