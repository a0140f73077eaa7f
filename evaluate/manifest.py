"""A run folder's records: what was generated (manifest) and what the judges said (verdicts).

Each process appends JSON lines to its own shard (``manifest/part-RANK.jsonl``,
``verdicts/JUDGE-part-RANK.jsonl``), so processes never write the same file; readers
merge all shards (a record seen twice keeps its last copy). A line is written only after
its image file is on disk, so a killed run leaves no record pointing at a missing image.

Run folder layout::

    run.yaml                       the resolved run config
    learned/<label>/<action>.safetensors
    images/<label>/<action>/<subject>_<k>.png
    manifest/part-000.jsonl        one line per image
    verdicts/<judge>-part-000.jsonl
    manifest.csv, verdicts.csv     merged copies (written at the end of a run)
    ratings.sqlite                 the annotation app's answers
    report.html
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST_COLUMNS = ["image_id", "method", "method_name", "action", "subject", "index", "seed", "path", "prompt", "time_s"]
VERDICT_COLUMNS = ["image_id", "judge", "action_ok", "subject_ok", "predicted_action", "predicted_subject", "score", "note"]


def slug(text: str) -> str:
    """``"A polar bear"`` -> ``"a_polar_bear"`` (file-name safe)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def image_id(label: str, action: str, subject: str, index: int) -> str:
    return f"{label}/{action}/{slug(subject)}/{index}"


@dataclass
class ImageRecord:
    image_id: str
    method: str  # the column label (e.g. "adi" or "adi-beta0.4")
    method_name: str  # the registered method ("adi")
    action: str
    subject: str
    index: int  # 0..K-1 within the subject-action pair
    seed: int
    path: str  # relative to the run folder
    prompt: str
    time_s: float


def append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:  # a torn last line (a kill mid-write) stays alone on its line
        f.seek(0, 2)
        if f.tell():
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()


def _read_jsonl(paths) -> list[dict]:
    out = []
    for p in sorted(paths):
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write: its image is redone on the next run
    return out


def manifest_shard(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / "manifest" / f"part-{rank:03d}.jsonl"


def verdict_shard(run_dir: Path, judge: str, rank: int) -> Path:
    return Path(run_dir) / "verdicts" / f"{judge}-part-{rank:03d}.jsonl"


def read_manifest(run_dir: str | Path):
    """All image records of a run (pandas DataFrame, one row per image id), shards merged."""
    import pandas as pd

    run_dir = Path(run_dir)
    rows = _read_jsonl((run_dir / "manifest").glob("part-*.jsonl")) if (run_dir / "manifest").is_dir() else []
    if not rows and (run_dir / "manifest.csv").exists():
        return pd.read_csv(run_dir / "manifest.csv")
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return df.drop_duplicates("image_id", keep="last").reset_index(drop=True)


def read_verdicts(run_dir: str | Path):
    """All judge verdicts of a run (one row per image id and judge), shards merged."""
    import pandas as pd

    run_dir = Path(run_dir)
    rows = _read_jsonl((run_dir / "verdicts").glob("*-part-*.jsonl")) if (run_dir / "verdicts").is_dir() else []
    df = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    for col in ("action_ok", "subject_ok"):
        df[col] = df[col].astype("boolean")
    return df.drop_duplicates(["image_id", "judge"], keep="last").reset_index(drop=True)


def write_merged(run_dir: str | Path) -> None:
    """``manifest.csv`` and ``verdicts.csv``: the shards merged, for spreadsheets and pandas."""
    run_dir = Path(run_dir)
    read_manifest(run_dir).to_csv(run_dir / "manifest.csv", index=False)
    read_verdicts(run_dir).to_csv(run_dir / "verdicts.csv", index=False)


def record_dict(record: ImageRecord) -> dict:
    return asdict(record)
