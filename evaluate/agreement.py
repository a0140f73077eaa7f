"""Agreement: between raters, and between each judge and the raters' majority.

What a human study has to report before its accuracy numbers mean anything (ImagenHub
reports Cohen's kappa and Krippendorff's alpha per method; DreamBench++ validates its
judge by its alpha against humans beside the human-human alpha). Per question (``action``,
``subject``, and ``total`` = both right) and per method (and over all methods):

- ``raw_agreement``: over images with two or more answers, the share of rater pairs that
  agree on the image, averaged over images (pairwise percent agreement);
- ``kappa_mean``: Cohen's kappa of every rater pair on the images both answered
  (scikit-learn's ``cohen_kappa_score``), averaged over the pairs that have one; the pairs
  themselves are in :func:`pair_table`;
- ``alpha``: Krippendorff's alpha, nominal, over all raters, missing answers allowed (the
  ``krippendorff`` package);
- per judge, against the **majority human answer** (images whose raters tie are left out):
  ``accuracy``, ``kappa``, ``alpha`` (judge and majority as two coders) and ``alpha_share``
  = that alpha / the human-human alpha (1 means the judge agrees with the majority as well
  as humans agree with each other; a majority of k raters is itself more reliable than one
  rater, so a share above 1 is possible and not a sign of a superhuman judge).

Intervals: 95% percentile bootstrap over images (the images are resampled, each keeping all
its answers), ``bootstrap`` resamples, seeded. An undefined statistic (a single rater, no
variation: kappa and alpha divide by zero) is NaN, never 0 or 1.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

QUESTIONS = ("action", "subject", "total")
COLUMNS = ["method", "question", "between", "statistic", "value", "ci_low", "ci_high", "images", "raters"]


# -- the equations: pure functions of a (images x raters) matrix of 0/1/NaN ---------------


def answer_matrix(ratings: pd.DataFrame, question: str) -> pd.DataFrame:
    """images x raters, 1.0 / 0.0 / NaN (not answered) for ``question``.

    ``total`` is 1 when the rater said yes to both questions, 0 when no to either, NaN while
    either is unanswered (the paper's "both right", per rater).
    """
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r} (known: {', '.join(QUESTIONS)})")
    r = ratings.copy()
    a = r.action_ok.astype("Float64").astype(float)
    s = r.subject_ok.astype("Float64").astype(float)
    r["value"] = {"action": a, "subject": s, "total": (a * s).where(a.notna() & s.notna())}[question]
    r = r.dropna(subset=["value"])
    if r.empty:
        return pd.DataFrame(dtype=float)
    return r.pivot_table(index="image_id", columns="rater", values="value", aggfunc="first").astype(float)


def raw_agreement(m: np.ndarray) -> float:
    """Mean over images (rows with >= 2 answers) of the share of agreeing rater pairs."""
    m = np.asarray(m, dtype=float)
    n = (~np.isnan(m)).sum(1)
    yes = np.nansum(m, 1)
    keep = n >= 2
    if not keep.any():
        return float("nan")
    n, yes = n[keep], yes[keep]
    agree_pairs = yes * (yes - 1) / 2 + (n - yes) * (n - yes - 1) / 2
    return float(np.mean(agree_pairs / (n * (n - 1) / 2)))


def kappa(a, b) -> float:
    """Cohen's kappa of two aligned 0/1 sequences (scikit-learn); NaN when undefined."""
    from sklearn.metrics import cohen_kappa_score

    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if len(a) == 0:
        return float("nan")
    with warnings.catch_warnings():  # "invalid value in divide" when both raters are constant
        warnings.simplefilter("ignore")
        k = cohen_kappa_score(a, b, labels=[0, 1])
    return float(k)


def pair_kappas(m: np.ndarray) -> list[tuple[int, int, int, float, float]]:
    """(rater i, rater j, images both answered, kappa, raw agreement) for every pair with overlap."""
    m = np.asarray(m, dtype=float)
    out = []
    for i, j in itertools.combinations(range(m.shape[1]), 2):
        both = ~np.isnan(m[:, i]) & ~np.isnan(m[:, j])
        if both.any():
            a, b = m[both, i], m[both, j]
            out.append((i, j, int(both.sum()), kappa(a, b), float((a == b).mean())))
    return out


def kappa_mean(m: np.ndarray) -> float:
    ks = [k for *_, k, _ in pair_kappas(m) if k == k]
    return float(np.mean(ks)) if ks else float("nan")


def alpha(m: np.ndarray) -> float:
    """Krippendorff's alpha, nominal, of an images x raters matrix (NaN = missing); NaN when undefined."""
    import krippendorff

    m = np.asarray(m, dtype=float)
    pairable = m[(~np.isnan(m)).sum(1) >= 2]
    if pairable.size == 0 or len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        return float("nan")  # no pairable answers, or one value only: expected disagreement is 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(krippendorff.alpha(reliability_data=m.T, level_of_measurement="nominal"))


def majority(m: np.ndarray) -> np.ndarray:
    """Each image's majority answer (1.0 / 0.0); NaN for a tie or no answer."""
    m = np.asarray(m, dtype=float)
    n = (~np.isnan(m)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nansum(m, 1) / n
    out = np.where(share > 0.5, 1.0, np.where(share < 0.5, 0.0, np.nan))
    out[n == 0] = np.nan
    return out


def judge_statistics(j: np.ndarray, m: np.ndarray, human_alpha: float | None = None) -> dict[str, float]:
    """A judge's answers ``j`` (NaN: cannot tell) against the majority of ``m`` on the same images."""
    j = np.asarray(j, dtype=float)
    maj = majority(m)
    ok = ~np.isnan(j) & ~np.isnan(maj)
    if not ok.any():
        return {"accuracy": float("nan"), "kappa": float("nan"), "alpha": float("nan"), "alpha_share": float("nan")}
    a = alpha(np.stack([j[ok], maj[ok]], 1))
    h = alpha(m) if human_alpha is None else human_alpha
    return {"accuracy": float((j[ok] == maj[ok]).mean()), "kappa": kappa(j[ok], maj[ok]), "alpha": a,
            "alpha_share": a / h if h == h and h != 0 and a == a else float("nan")}


def rater_statistics(m: np.ndarray) -> dict[str, float]:
    return {"raw_agreement": raw_agreement(m), "kappa_mean": kappa_mean(m), "alpha": alpha(m)}


# -- intervals -----------------------------------------------------------------------------


def bootstrap(stat, arrays: tuple[np.ndarray, ...], n: int = 1000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of each entry of ``stat(*arrays)`` (a dict of floats), resampling rows."""
    if n <= 0 or len(arrays[0]) == 0:
        return {}
    rng = np.random.default_rng(seed)
    rows = len(arrays[0])
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, rows, rows)
        for k, v in stat(*(a[idx] for a in arrays)).items():
            draws.setdefault(k, []).append(v)
    out = {}
    for k, v in draws.items():
        v = np.asarray(v, dtype=float)
        v = v[~np.isnan(v)]
        out[k] = (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))) if len(v) else (float("nan"), float("nan"))
    return out


# -- the report ----------------------------------------------------------------------------


def agreement_report(manifest: pd.DataFrame, ratings: pd.DataFrame, verdicts: pd.DataFrame | None = None,
                     bootstrap_samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long table (``COLUMNS``): per method ("all" first) x question, the raters' statistics and each judge's.

    Only images of the manifest count (gold items and attention checks are not in it), and
    only complete ratings (both questions answered), as in the accuracy tables: a rating left
    half done counts in neither.
    """
    ids = set(manifest.image_id)
    ratings = ratings[ratings.image_id.isin(ids)].dropna(subset=["action_ok", "subject_ok"])
    verdicts = verdicts if verdicts is not None else pd.DataFrame(columns=["image_id", "judge", "action_ok", "subject_ok"])
    verdicts = verdicts[verdicts.image_id.isin(ids)]
    method_of = manifest.set_index("image_id").method
    rows = []
    for q in QUESTIONS:
        full = answer_matrix(ratings, q)
        if full.empty:
            continue
        judges = {name: _judge_answers(verdicts[verdicts.judge == name], q) for name in sorted(set(verdicts.judge))}
        for method in ["all", *dict.fromkeys(manifest.method)]:
            m = full if method == "all" else full[method_of.reindex(full.index).values == method]
            m = m.loc[:, m.notna().any()]
            if m.empty:
                continue
            values = m.to_numpy()
            point = rater_statistics(values)
            ci = bootstrap(rater_statistics, (values,), bootstrap_samples, seed)
            for stat, v in point.items():
                rows.append(_row(method, q, "raters", stat, v, ci.get(stat), len(m), m.shape[1]))
            for name, answers in judges.items():
                j = answers.reindex(m.index).to_numpy(dtype=float)
                if np.isnan(j).all():
                    continue
                human = point["alpha"]
                point_j = judge_statistics(j, values, human)
                ci_j = bootstrap(lambda jj, mm: judge_statistics(jj, mm), (j, values), bootstrap_samples, seed)
                for stat, v in point_j.items():
                    rows.append(_row(method, q, f"judge:{name} vs majority", stat, v, ci_j.get(stat),
                                     int((~np.isnan(j) & ~np.isnan(majority(values))).sum()), m.shape[1]))
    return pd.DataFrame(rows, columns=COLUMNS)


def pair_table(manifest: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa and raw agreement of every rater pair, per question, over all methods."""
    ratings = ratings[ratings.image_id.isin(set(manifest.image_id))].dropna(subset=["action_ok", "subject_ok"])
    rows = []
    for q in QUESTIONS:
        m = answer_matrix(ratings, q)
        if m.empty:
            continue
        for i, j, n, k, agree in pair_kappas(m.to_numpy()):
            rows.append(dict(question=q, rater_a=m.columns[i], rater_b=m.columns[j], images=n, kappa=k, agreement=agree))
    return pd.DataFrame(rows, columns=["question", "rater_a", "rater_b", "images", "kappa", "agreement"])


def summary(report: pd.DataFrame, method: str = "all") -> pd.DataFrame:
    """Wide view for one method: one row per (between, question), 'value [lo, hi]' per statistic."""
    t = report[report.method == method]
    out = []
    for (between, q), g in t.groupby(["between", "question"], sort=False):
        row = {"between": between, "question": q, "images": int(g.images.iloc[0]), "raters": int(g.raters.iloc[0])}
        for r in g.itertuples():
            row[r.statistic] = _fmt(r.value, r.ci_low, r.ci_high)
        out.append(row)
    return pd.DataFrame(out)


def run_agreement(run_dir, bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``actionbench agreement RUN``: the report, the per-method summaries and the rater pairs of a run folder."""
    from actionbench.errors import ActionBenchError

    from .manifest import read_manifest, read_verdicts
    from .ratings import read_ratings

    manifest, ratings = read_manifest(run_dir), read_ratings(run_dir)
    if manifest.empty:
        raise ActionBenchError(f"{run_dir}: no generated images (is it a run folder? see `actionbench run`)")
    if ratings.empty:
        raise ActionBenchError(f"{run_dir}: nobody has rated yet (rate with `actionbench annotate {run_dir}`)")
    report = agreement_report(manifest, ratings, read_verdicts(run_dir), bootstrap_samples, seed)
    out = {"overall": summary(report, "all")}
    for method in dict.fromkeys(manifest.method):
        if (report.method == method).any():
            out[f"method: {method}"] = summary(report, method)
    out["rater pairs"] = pair_table(manifest, ratings)
    out["long"] = report
    return out


def _judge_answers(v: pd.DataFrame, question: str) -> pd.Series:
    v = v.drop_duplicates("image_id", keep="last").set_index("image_id")
    a = v.action_ok.astype("Float64").astype(float)
    s = v.subject_ok.astype("Float64").astype(float)
    return {"action": a, "subject": s, "total": (a * s).where(a.notna() & s.notna())}[question]


def _row(method, question, between, statistic, value, ci, images, raters) -> dict:
    lo, hi = ci if ci else (float("nan"), float("nan"))
    return dict(method=method, question=question, between=between, statistic=statistic, value=value,
                ci_low=lo, ci_high=hi, images=images, raters=raters)


def _fmt(v: float, lo: float, hi: float) -> str:
    if v != v:
        return "-"
    return f"{v:.3f}" if lo != lo else f"{v:.3f} [{lo:.2f}, {hi:.2f}]"
