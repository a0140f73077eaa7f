"""The raters' answers, in SQLite inside the run folder (``ratings.sqlite``).

The rating app (``annotate_app``) writes them here and the tables (:mod:`evaluate.tables`)
read them, so the store lives on the evaluate floor, below the app.

Every answer is written and committed the moment it is given (one row per rater and
image, one column per question), so a closed tab or a killed server loses nothing. WAL
mode lets several raters' sessions write at once.

Answers on gold items and attention checks (:mod:`evaluate.study`) go to their own table,
``checks``, with the known answers beside them: they are not run images, and keeping them
out of ``ratings`` is what keeps them out of every accuracy and agreement table.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from actionbench.errors import ActionBenchError

QUESTIONS = ("action_ok", "subject_ok")
SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    rater      TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    action_ok  INTEGER,          -- 1 right, 0 wrong, NULL not answered yet
    subject_ok INTEGER,
    updated    REAL NOT NULL,    -- unix time of the last answer
    PRIMARY KEY (rater, image_id)
);
CREATE TABLE IF NOT EXISTS checks (
    rater            TEXT NOT NULL,
    item_id          TEXT NOT NULL,   -- gold/... or attention/N, never a manifest image id
    kind             TEXT NOT NULL,   -- gold | attention
    expected_action  INTEGER NOT NULL,
    expected_subject INTEGER NOT NULL,
    action_ok        INTEGER,
    subject_ok       INTEGER,
    updated          REAL NOT NULL,
    PRIMARY KEY (rater, item_id)
);
"""
CHECK_KINDS = ("gold", "attention")
DB_NAME = "ratings.sqlite"


class RatingStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / DB_NAME
        self._conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # an answer survives a power cut, not only a kill
        self._conn.executescript(SCHEMA)
        self._conn.commit()

    def answer(self, rater: str, image_id: str, question: str, value: bool) -> None:
        """Store one answer now (insert or update)."""
        if question not in QUESTIONS:
            raise ActionBenchError(f"unknown question {question!r} (known: {', '.join(QUESTIONS)})")
        rater = rater.strip()
        if not rater:
            raise ActionBenchError("a rater needs a name")
        with self._conn:  # commits on exit
            self._conn.execute(
                f"INSERT INTO ratings (rater, image_id, {question}, updated) VALUES (?, ?, ?, ?) "
                f"ON CONFLICT (rater, image_id) DO UPDATE SET {question} = excluded.{question}, updated = excluded.updated",
                (rater, image_id, int(bool(value)), time.time()),
            )

    def answer_check(self, rater: str, item_id: str, kind: str, expected: tuple[bool, bool], question: str,
                     value: bool) -> None:
        """Store one answer on a gold item or attention check now, with its known answers."""
        if question not in QUESTIONS:
            raise ActionBenchError(f"unknown question {question!r} (known: {', '.join(QUESTIONS)})")
        if kind not in CHECK_KINDS:
            raise ActionBenchError(f"unknown check kind {kind!r} (known: {', '.join(CHECK_KINDS)})")
        rater = rater.strip()
        if not rater:
            raise ActionBenchError("a rater needs a name")
        with self._conn:
            self._conn.execute(
                f"INSERT INTO checks (rater, item_id, kind, expected_action, expected_subject, {question}, updated) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rater, item_id) DO UPDATE SET "
                f"{question} = excluded.{question}, updated = excluded.updated",
                (rater, item_id, kind, int(bool(expected[0])), int(bool(expected[1])), int(bool(value)), time.time()),
            )

    def checks_for_rater(self, rater: str) -> dict[str, dict[str, bool | None]]:
        """item_id -> {question: answer or None} of one rater's gold items and attention checks."""
        rows = self._conn.execute("SELECT item_id, action_ok, subject_ok FROM checks WHERE rater = ?", (rater,))
        return {r[0]: {"action_ok": _b(r[1]), "subject_ok": _b(r[2])} for r in rows}

    def checks_frame(self):
        """All gold and attention answers (rater, item_id, kind, expected_action, expected_subject,
        action_ok, subject_ok, updated)."""
        import pandas as pd

        df = pd.read_sql_query("SELECT rater, item_id, kind, expected_action, expected_subject, action_ok, subject_ok, "
                               "updated FROM checks", self._conn)
        for col in ("expected_action", "expected_subject"):
            df[col] = df[col].astype(bool)
        for q in QUESTIONS:
            df[q] = df[q].astype("boolean")
        return df

    def for_rater(self, rater: str) -> dict[str, dict[str, bool | None]]:
        """image_id -> {question: answer or None} for one rater."""
        rows = self._conn.execute("SELECT image_id, action_ok, subject_ok FROM ratings WHERE rater = ?", (rater,))
        return {r[0]: {"action_ok": _b(r[1]), "subject_ok": _b(r[2])} for r in rows}

    def complete(self, rater: str) -> set[str]:
        """Images this rater has answered both questions for."""
        return {k for k, v in self.for_rater(rater).items() if None not in v.values()}

    def raters(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT rater FROM ratings ORDER BY rater")]

    def frame(self):
        """All answers as a pandas DataFrame (rater, image_id, action_ok, subject_ok, updated)."""
        import pandas as pd

        df = pd.read_sql_query("SELECT rater, image_id, action_ok, subject_ok, updated FROM ratings", self._conn)
        for q in QUESTIONS:
            df[q] = df[q].astype("boolean")
        return df

    def close(self) -> None:
        self._conn.close()


def _b(x) -> bool | None:
    return None if x is None else bool(x)


def read_ratings(run_dir: str | Path):
    """The run's ratings (empty DataFrame when nobody has rated yet)."""
    import pandas as pd

    path = Path(run_dir) / DB_NAME
    if not path.exists():
        return pd.DataFrame({"rater": pd.Series(dtype=str), "image_id": pd.Series(dtype=str),
                             "action_ok": pd.Series(dtype="boolean"), "subject_ok": pd.Series(dtype="boolean")})
    store = RatingStore(path)
    try:
        return store.frame()
    finally:
        store.close()


def read_checks(run_dir: str | Path):
    """The run's answers on gold items and attention checks (empty DataFrame when none)."""
    import pandas as pd

    path = Path(run_dir) / DB_NAME
    if not path.exists():
        return pd.DataFrame({"rater": pd.Series(dtype=str), "item_id": pd.Series(dtype=str), "kind": pd.Series(dtype=str),
                             "expected_action": pd.Series(dtype=bool), "expected_subject": pd.Series(dtype=bool),
                             "action_ok": pd.Series(dtype="boolean"), "subject_ok": pd.Series(dtype="boolean"),
                             "updated": pd.Series(dtype=float)})
    store = RatingStore(path)
    try:
        return store.checks_frame()
    finally:
        store.close()
