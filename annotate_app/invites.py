"""Invite-only raters: one secret link per rater, only the link's hash on disk.

Why: a rating app on a lab network must not let anybody rate, nor rate under somebody
else's name. ``actionbench annotate RUN --raters alice,bob`` makes a random token per
rater (``secrets.token_urlsafe``), prints the links (``http://HOST:PORT/?token=...``) once,
and stores only the tokens' sha256 in ``RUN/raters.json``::

    {"version": 1, "raters": {"alice": {"token_sha256": "...", "created": 1700000000.0, "revoked": null}}}

so a copy of the run folder gives nobody a working link. The app takes the rater's name
from the token, never from the page. Issuing a link for a rater who has one replaces it
(the old link stops working; a revoked rater gets a working link again): tokens are not
kept, so this is also how a lost link is replaced. ``RUN/study.json`` holds the study's
design (:class:`evaluate.study.Design`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import asdict, fields
from pathlib import Path

from actionbench.errors import ActionBenchError
from evaluate.study import Design

RATERS_FILE = "raters.json"
STUDY_FILE = "study.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ActionBenchError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); fix or delete it ({what})") from None
    if not isinstance(data, dict):
        raise ActionBenchError(f"{path}: expected a JSON object ({what})")
    return data


def _write_json(path: Path, data: dict) -> None:
    """Atomically (a temporary file renamed over it): the app may read it at any moment."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def has_raters(run_dir: str | Path) -> bool:
    """Invite mode: the run has a raters file (the app then accepts links only)."""
    return (Path(run_dir) / RATERS_FILE).exists()


def load_raters(run_dir: str | Path) -> dict[str, dict]:
    """name -> {token_sha256, created, revoked}; empty without a raters file."""
    path = Path(run_dir) / RATERS_FILE
    if not path.exists():
        return {}
    raters = _read_json(path, "the invited raters").get("raters")
    if not isinstance(raters, dict) or not all(isinstance(v, dict) and "token_sha256" in v for v in raters.values()):
        raise ActionBenchError(f'{path}: expected {{"raters": {{NAME: {{"token_sha256": ..., "created": ..., "revoked": ...}}}}}}')
    return raters


def active_raters(run_dir: str | Path) -> list[str]:
    """Invited raters whose link works, sorted."""
    return sorted(n for n, r in load_raters(run_dir).items() if not r.get("revoked"))


def _save_raters(run_dir: Path, raters: dict[str, dict]) -> None:
    _write_json(run_dir / RATERS_FILE, {"version": 1, "raters": raters})


def parse_names(text: str) -> list[str]:
    """``"alice, bob"`` -> ``["alice", "bob"]``; a clear error for a name that cannot be one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ActionBenchError("--raters / --revoke: give names separated by commas, e.g. alice,bob")
    for n in names:
        if not NAME.match(n):
            raise ActionBenchError(f"rater name {n!r}: use letters, digits, '_', '.', '-' (up to 64, starting with a letter or digit)")
    return list(dict.fromkeys(names))


def issue(run_dir: str | Path, names: list[str]) -> dict[str, str]:
    """A new token for each name (replacing any earlier one): name -> token. Only the hash is kept."""
    run_dir = Path(run_dir)
    raters = load_raters(run_dir)
    tokens = {}
    for name in names:
        token = secrets.token_urlsafe(32)
        raters[name] = {"token_sha256": token_hash(token), "created": time.time(), "revoked": None}
        tokens[name] = token
    _save_raters(run_dir, raters)
    return tokens


def revoke(run_dir: str | Path, names: list[str]) -> None:
    """Stop these raters' links from working (their answers so far stay in the store)."""
    run_dir = Path(run_dir)
    raters = load_raters(run_dir)
    unknown = [n for n in names if n not in raters]
    if unknown:
        raise ActionBenchError(f"{run_dir / RATERS_FILE}: no rater {', '.join(unknown)} (invited: {', '.join(sorted(raters)) or 'none'})")
    for n in names:
        raters[n]["revoked"] = raters[n].get("revoked") or time.time()
    _save_raters(run_dir, raters)


def rater_for_token(run_dir: str | Path, token: str | None) -> str | None:
    """The active rater whose link carries ``token``, or None (no token, unknown, revoked).

    Read from disk on every call, so a revocation takes effect on the rater's next click."""
    if not token:
        return None
    digest = token_hash(token)
    for name, r in load_raters(run_dir).items():
        if hmac.compare_digest(str(r.get("token_sha256", "")), digest):
            return None if r.get("revoked") else name
    return None


def link(base: str, token: str) -> str:
    """``http://host:8501/`` + token -> the rater's link."""
    return f"{base.rstrip('/')}/?token={token}"


def load_design(run_dir: str | Path) -> Design:
    """The study's design from ``study.json`` (the defaults without one)."""
    path = Path(run_dir) / STUDY_FILE
    if not path.exists():
        return Design()
    data = _read_json(path, "the study's design")
    known = {f.name for f in fields(Design)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ActionBenchError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        return Design(**data)
    except TypeError as err:
        raise ActionBenchError(f"{path}: {err}; fix or delete it (actionbench annotate RUN --raters-per-image K ...)") from None


def save_design(run_dir: str | Path, design: Design) -> None:
    _write_json(Path(run_dir) / STUDY_FILE, asdict(design))
