"""A worked example of a human study, with raters simulated from exact labels.

No lab's raters are at hand, so this shows what the study tools report when the truth is
known. Only ActionWorld renders have exact labels (the renderer knows which action and
which subject it drew), so the study's images are renders put through the world model's
VAE (encode, decode: they look like the model's output, and the world judge is less sure
of them than of clean renders). Two labelled sets play two "methods" of known quality:

- ``set-a``: the asked action drawn in 70% of images, the asked subject in 90%;
- ``set-b``: the asked action in 35%, the asked subject in 70%
  (a wrong image shows another ActionWorld action or subject, chosen at random).

Raters answer with the truth and flip each answer with a known probability:

1. **Panels of 3 raters with one error rate** (0%, 10%, 25%), every rater every image:
   Krippendorff's alpha between them, and the world judge against their majority (accuracy,
   alpha, alpha as a share of the human-human alpha), beside the judge against the truth.
2. **One mixed panel in the run folder**, as the rating app would collect it:
   5 raters with error rates 0%, 5%, 10%, 10% and 25%, K = 3 raters per image
   (:func:`evaluate.study.assign`), one more rater on every image the first three
   disagree on, 12 gold items each (the world benchmark's exemplars: renders with known
   answers) and the attention checks of :func:`evaluate.study.n_checks`. Its per-rater
   quality (``raters_quality.csv``) must single out the 25% rater by gold accuracy, and
   ``actionbench agreement`` / ``actionbench report`` work on the folder.

    python -m evaluate.simulated_study                     # results/simulated-study, docs/img/study_*.png

About 6 CPU-minutes on this 2-core machine (rendering, the VAE and the judge on 192 images take 1; the
1000-resample bootstraps the rest).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from actionbench.world import render as R

from .agreement import agreement_report, run_agreement
from .manifest import append_jsonl, manifest_shard, read_manifest, read_verdicts, verdict_shard, write_merged
from .ratings import RatingStore, read_checks, read_ratings
from .study import Design, assign, attention_checks, extra_assignments, gold_items, n_checks

SETS = {"set-a": (0.70, 0.90), "set-b": (0.35, 0.70)}  # P(asked action drawn), P(asked subject drawn)
SUBJECTS = ["man", "woman", "old_man", "cat", "dog", "panda"]
PANEL_RATES = (0.0, 0.10, 0.25)
MIXED = {"ann": 0.0, "bob": 0.05, "cai": 0.10, "dee": 0.10, "eve": 0.25}
BENCH = Path(__file__).resolve().parents[1] / "actionbench" / "world" / "bench"


def subject_name(kind: str) -> str:
    p = R.subject_phrase(kind)
    return p[:1].upper() + p[1:]


def labelled_items(n_per_set: int, seed: int = 0) -> pd.DataFrame:
    """What each image was asked to show, what it shows, and the exact answers."""
    rng = np.random.default_rng(seed)
    actions = list(R.ACTIONBENCH)
    rows = []
    for method, (p_action, p_subject) in SETS.items():
        for k in range(n_per_set):
            action, subject = actions[k % len(actions)], SUBJECTS[(k // len(actions)) % len(SUBJECTS)]
            drawn_action = action if rng.random() < p_action else rng.choice([a for a in R.ACTIONS if a != R.ACTIONBENCH[action]])
            drawn_subject = subject if rng.random() < p_subject else rng.choice([s for s in R.SUBJECTS if s != subject])
            slug = subject_name(subject).lower().replace(" ", "_")
            rows.append(dict(image_id=f"{method}/{action}/{slug}/{k}", method=method, action=action,
                             subject=subject_name(subject), index=k, seed=seed * 100_000 + k,
                             path=f"images/{method}/{action}/{k:03d}.png", context=str(rng.choice(R.CONTEXTS)),
                             drawn_action=str(drawn_action), drawn_subject=str(drawn_subject),
                             action_ok=bool(drawn_action == R.ACTIONBENCH[action]), subject_ok=bool(drawn_subject == subject)))
    return pd.DataFrame(rows)


def build_run(run: Path, items: pd.DataFrame, device: str = "cpu") -> None:
    """Render, put through the world VAE, write the run folder (manifest, run.yaml, labels), judge."""
    import torch

    from actionbench.models import load_pipeline
    from actionbench.world.judge import to_input

    from .judges import Item, JudgeContext, make_judge

    run.mkdir(parents=True, exist_ok=True)
    vae = load_pipeline("world-v2b", device).vae
    x = to_input([R.render(r.drawn_subject, r.drawn_action, r.context, r.seed) for r in items.itertuples()])
    with torch.no_grad():
        rec = torch.cat([vae.decode(vae.encode(x[i:i + 64].to(vae.device, vae.dtype)).latent_dist.mean).sample.float()
                         .cpu().clamp(-1, 1) for i in range(0, len(x), 64)])
    from PIL import Image

    arr = ((rec.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    for r, a in zip(items.itertuples(), arr):
        (run / r.path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(run / r.path)
        append_jsonl(manifest_shard(run, 0), dict(image_id=r.image_id, method=r.method, method_name=r.method,
                                                  action=r.action, subject=r.subject, index=r.index, seed=r.seed,
                                                  path=r.path, prompt=f"{r.subject} <A>", time_s=0.0))
    (run / "run.yaml").write_text(
        f"name: {run.name}\nmodel: world\nbenchmark: {Path('actionbench/world/bench').as_posix()}\n"
        f"methods: [{', '.join(SETS)}]\nactions: [{', '.join(dict.fromkeys(items.action))}]\n"
        f"subjects: [{', '.join(dict.fromkeys(items.subject))}]\njudges: [world]\n"
        "# not a method run: labelled ActionWorld renders through the world VAE (python -m evaluate.simulated_study)\n")
    items[["image_id", "method", "action", "subject", "context", "drawn_action", "drawn_subject", "action_ok",
           "subject_ok"]].to_csv(run / "labels.csv", index=False)
    judge = make_judge("world", JudgeContext({}, tuple(dict.fromkeys(items.subject)), device))
    from actionbench.bench import open_image

    verdicts = judge.judge([open_image(run / p) for p in items.path],
                           [Item(r.image_id, r.action, r.subject) for r in items.itertuples()])
    for v in verdicts:
        append_jsonl(verdict_shard(run, "world", 0), v.to_dict())
    write_merged(run)


def simulate(truth: np.ndarray, error: float, rng: np.random.Generator) -> np.ndarray:
    """A rater's 0/1 answers: the truth with each answer flipped with probability ``error``."""
    return np.where(rng.random(truth.shape) < error, 1 - truth, truth)


def panels(items: pd.DataFrame, verdicts: pd.DataFrame, bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Part 1: for each error rate, a panel of 3 raters; alpha, the judge against the majority and the truth."""
    rng = np.random.default_rng([seed, 1])
    truth = items[["action_ok", "subject_ok"]].to_numpy(dtype=int)
    manifest = items[["image_id", "method"]]
    world = verdicts[verdicts.judge == "world"].set_index("image_id").reindex(items.image_id)
    rows = []
    for e in PANEL_RATES:
        frames = []
        for r in range(3):
            ans = simulate(truth, e, rng)
            frames.append(pd.DataFrame({"rater": f"rater{r}", "image_id": items.image_id, "action_ok": ans[:, 0],
                                        "subject_ok": ans[:, 1]}))
        ratings = pd.concat(frames, ignore_index=True)
        rep = agreement_report(manifest, ratings, verdicts, bootstrap, seed)
        rep = rep[rep.method == "all"]
        for q, col in (("action", 0), ("subject", 1)):
            def get(between, stat, q=q, rep=rep):
                return rep[(rep.question == q) & (rep.between == between) & (rep.statistic == stat)].iloc[0]

            judge_truth = float((world[f"{q}_ok"].astype(float).to_numpy() == truth[:, col]).mean())
            a, ja, share, jacc = get("raters", "alpha"), get("judge:world vs majority", "alpha"), \
                get("judge:world vs majority", "alpha_share"), get("judge:world vs majority", "accuracy")
            rows.append(dict(error_rate=e, question=q, images=int(a.images), raters=3,
                             alpha=a.value, alpha_ci_low=a.ci_low, alpha_ci_high=a.ci_high,
                             raw_agreement=get("raters", "raw_agreement").value, kappa_mean=get("raters", "kappa_mean").value,
                             judge_accuracy_vs_majority=jacc.value, judge_alpha=ja.value, judge_alpha_ci_low=ja.ci_low,
                             judge_alpha_ci_high=ja.ci_high, judge_alpha_share=share.value,
                             judge_accuracy_vs_truth=judge_truth))
    return pd.DataFrame(rows)


def mixed_panel(run: Path, items: pd.DataFrame, design: Design, seed: int = 0) -> pd.DataFrame:
    """Part 2: the mixed panel's ratings and checks into the run folder; returns raters_quality."""
    from .study import rater_quality

    rng = np.random.default_rng([seed, 2])
    truth = {r.image_id: (int(r.action_ok), int(r.subject_ok)) for r in items.itertuples()}
    raters = sorted(MIXED)
    assignment = assign(list(items.image_id), raters, design.raters_per_image, design.seed)
    exemplars = _world_exemplars()
    wrong_subjects = [subject_name(s) for s in R.ANIMALS]
    store = RatingStore(run)
    answers: dict[str, dict[str, tuple[bool, bool]]] = {}

    def rate(rater, image_id):
        a = simulate(np.array(truth[image_id]), MIXED[rater], rng)
        store.answer(rater, image_id, "action_ok", bool(a[0]))
        store.answer(rater, image_id, "subject_ok", bool(a[1]))
        answers.setdefault(image_id, {})[rater] = (bool(a[0]), bool(a[1]))

    try:
        for rater in raters:
            for image_id in assignment[rater]:
                rate(rater, image_id)
            images = [_study_item(items, i) for i in assignment[rater]]
            checks = gold_items(exemplars, list(dict.fromkeys(items.action)), design.gold_per_rater, rater, design.seed,
                                wrong_subjects) + attention_checks(images, n_checks(len(images), design), rater, design.seed)
            for c in checks:
                a = simulate(np.array(c.expected, dtype=int), MIXED[rater], rng)
                store.answer_check(rater, c.item_id, c.kind, c.expected, "action_ok", bool(a[0]))
                store.answer_check(rater, c.item_id, c.kind, c.expected, "subject_ok", bool(a[1]))
        for rater, extra in extra_assignments(assignment, answers, raters, design.raters_per_image, design.seed).items():
            for image_id in extra:
                rate(rater, image_id)
    finally:
        store.close()
    (run / "study.json").write_text(json.dumps({"raters_per_image": design.raters_per_image,
                                                "gold_per_rater": design.gold_per_rater,
                                                "checks_every": design.checks_every, "min_checks": design.min_checks,
                                                "seed": design.seed, "simulated_error_rates": MIXED}, indent=1))
    quality = rater_quality(read_ratings(run), read_checks(run), raters)
    quality.insert(1, "simulated_error_rate", quality.rater.map(MIXED))
    return quality


def _world_exemplars() -> dict[str, list[tuple[str, str]]]:
    """action -> [(exemplar path, the subject it shows)]: the world benchmark's renders (exact labels)."""
    from actionbench.bench import load_action

    out = {}
    for folder in sorted(p for p in BENCH.iterdir() if (p / "text.json").exists()):
        action = load_action(folder, verify_images=False)
        out[action.name] = [(str(e.image_path), e.template.split("{}")[0].strip()) for e in action.exemplars]
    return out


def _study_item(items: pd.DataFrame, image_id: str):
    from .study import Item

    r = items.set_index("image_id").loc[image_id]
    return Item(image_id, "image", r.path, r.action, r.subject)


def figures(table: pd.DataFrame, quality: pd.DataFrame, out_dir: Path) -> list[Path]:
    from .plots import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
    for ax, q in zip(axes, ("action", "subject")):
        t = table[table.question == q]
        x = 100 * t.error_rate.to_numpy()
        ax.errorbar(x, t.alpha, yerr=np.clip([t.alpha - t.alpha_ci_low, t.alpha_ci_high - t.alpha], 0, None), marker="o", capsize=3,
                    label="raters among themselves")
        ax.errorbar(x + 0.6, t.judge_alpha, yerr=np.clip([t.judge_alpha - t.judge_alpha_ci_low, t.judge_alpha_ci_high - t.judge_alpha], 0, None),
                    marker="s", capsize=3, label="world judge vs the raters' majority")
        ax.set_xticks(x, [f"{v:.0f}%" for v in x])
        ax.set_xlabel("simulated error rate of each rater")
        ax.set_title(f"{q} question: Krippendorff's alpha, 95% interval", fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("alpha")
    axes[1].legend(fontsize=7, loc="lower left")
    paths = [_save(fig, out_dir / "study_alpha.png")]
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    q = quality.sort_values("rater")
    from .tables import wilson

    ci = np.array([wilson(a, n) for a, n in zip(q.gold_accuracy, q.gold_answered)]) * 100
    err = np.clip(np.stack([100 * q.gold_accuracy - ci[:, 0], ci[:, 1] - 100 * q.gold_accuracy]), 0, None)
    bars = ax.bar(q.rater, 100 * q.gold_accuracy, yerr=err, capsize=3, color=["#d65f5f" if e == max(MIXED.values()) else "#4878d0"
                                                         for e in q.simulated_error_rate])
    for b, e, n in zip(bars, q.simulated_error_rate, q.gold_answered):
        ax.text(b.get_x() + b.get_width() / 2, 2, f"error {100 * e:.0f}%\n{n} gold", ha="center", fontsize=7, color="white")
    ax.set_ylim(0, 100)
    ax.set_ylabel("gold items right (%)")
    ax.set_title("mixed panel: gold accuracy per rater, 95% Wilson interval", fontsize=9)
    paths.append(_save(fig, out_dir / "study_gold.png"))
    return paths


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/simulated-study", help="the run folder to write (made fresh)")
    p.add_argument("--images-per-set", type=int, default=96)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figures", default="docs/img", help="where study_alpha.png and study_gold.png go")
    args = p.parse_args(argv)
    import shutil

    t0 = time.process_time()
    run = Path(args.out)
    if run.exists():
        shutil.rmtree(run)
    items = labelled_items(args.images_per_set, args.seed)
    build_run(run, items)
    verdicts = read_verdicts(run)
    table = panels(items, verdicts, args.bootstrap, args.seed)
    table.to_csv(run / "panels.csv", index=False)
    quality = mixed_panel(run, items, Design(raters_per_image=3, gold_per_rater=12, checks_every=50, min_checks=2,
                                             seed=args.seed))
    quality.to_csv(run / "raters_quality.csv", index=False)
    tables = run_agreement(run, args.bootstrap, args.seed)
    tables["long"].to_csv(run / "agreement.csv", index=False)
    tables["rater pairs"].to_csv(run / "agreement_pairs.csv", index=False)
    from actionbench.bench import load_benchmark

    from .report import write_report

    write_report(run, load_benchmark(BENCH, verify_images=False))
    figs = figures(table, quality, Path(args.figures))
    truth_acc = {m: {q: float(g[f"{q}_ok"].mean()) for q in ("action", "subject")} for m, g in items.groupby("method")}
    summary = {"images": len(items), "labelled_accuracy": truth_acc, "cpu_seconds": round(time.process_time() - t0, 1),
               "manifest_images": int(len(read_manifest(run)))}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    print(quality.round(3).to_string(index=False))
    print(json.dumps(summary), "figures:", ", ".join(map(str, figs)))


if __name__ == "__main__":
    main()
