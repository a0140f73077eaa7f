"""``actionbench annotate RUN --export [DIR]``: a human study's raw answers and each rater's quality.

Why: the accuracy tables average raters; before trusting them one wants every answer as
given (to re-analyse elsewhere) and, per rater, whether they were careful. Writes to
``DIR`` (default ``RUN/export``):

- ``ratings_raw.csv`` / ``.parquet``: one row per rater and run image (method, action,
  subject from the manifest; answers; unix time of the last answer; the rater's status);
- ``checks_raw.csv`` / ``.parquet``: one row per rater and gold item or attention check,
  the known answers beside the given ones and whether they match;
- ``raters_quality.csv``: per rater (:func:`evaluate.study.rater_quality`) plus their
  status (active / revoked / open: rated without an invitation) and share size.
"""

from __future__ import annotations

from pathlib import Path

from annotate_app import invites
from evaluate.manifest import read_manifest
from evaluate.ratings import read_checks, read_ratings
from evaluate.study import assign, rater_quality

RATING_COLUMNS = ["rater", "status", "image_id", "method", "action", "subject", "action_ok", "subject_ok", "updated"]
CHECK_COLUMNS = ["rater", "status", "item_id", "kind", "expected_action", "expected_subject", "action_ok", "subject_ok",
                 "correct", "updated"]


def _status(invited: dict[str, dict]):
    return lambda name: ("revoked" if invited[name].get("revoked") else "active") if name in invited else "open"


def export(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write the export files; return their paths."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(run_dir)
    invited = invites.load_raters(run_dir)
    status = _status(invited)

    ratings = read_ratings(run_dir)
    ratings = ratings[ratings.image_id.isin(set(manifest.image_id))]
    raw = ratings.merge(manifest[["image_id", "method", "action", "subject"]], on="image_id", how="left")
    raw["status"] = raw.rater.map(status)
    raw = raw.reindex(columns=RATING_COLUMNS).sort_values(["rater", "image_id"]).reset_index(drop=True)

    checks = read_checks(run_dir)
    c = checks.copy()
    answered = c.action_ok.notna() & c.subject_ok.notna()
    c["correct"] = ((c.action_ok == c.expected_action) & (c.subject_ok == c.expected_subject)).where(answered)
    c["correct"] = c["correct"].astype("boolean")
    c["status"] = c.rater.map(status)
    c = c.reindex(columns=CHECK_COLUMNS).sort_values(["rater", "item_id"]).reset_index(drop=True)

    quality = rater_quality(ratings, checks, list(invited))
    quality.insert(1, "status", quality.rater.map(status))
    if invited:
        design = invites.load_design(run_dir)
        share = assign(list(manifest.image_id), invites.active_raters(run_dir), design.raters_per_image, design.seed)
        quality.insert(2, "assigned", quality.rater.map(lambda r: len(share.get(r, []))))

    paths = []
    for name, df in (("ratings_raw", raw), ("checks_raw", c)):
        for suffix in (".csv", ".parquet"):
            path = out / f"{name}{suffix}"
            if suffix == ".csv":
                df.to_csv(path, index=False)
            else:
                df.to_parquet(path, index=False)
            paths.append(path)
    path = out / "raters_quality.csv"
    quality.to_csv(path, index=False)
    paths.append(path)
    return paths
