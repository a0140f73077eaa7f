"""``actionbench annotate RUN_DIR``: start the rating app on a run folder, and run its study.

Serving binds to 127.0.0.1 unless ``--host`` says otherwise, and a run without invited
raters (open mode: anybody who reaches the page rates under any name) is served on this
machine only. The study commands (``--raters``, ``--revoke``, ``--list-raters``, the design
flags, ``--export``) change or read the run folder and exit without serving.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from actionbench.errors import ActionBenchError

APP = Path(__file__).with_name("app.py")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def command(run_dir: str | Path, port: int = 8501, headless: bool = True, host: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line that serves the app for ``run_dir`` on ``host``."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false",
            "--", str(Path(run_dir).resolve())]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: str | Path, port: int, timeout: float = 300, host: str = "127.0.0.1") -> subprocess.Popen:
    """Serve the app for ``run_dir`` in the background (its own process group) and return once
    Streamlit answers its health check; ``timeout`` is generous: a loaded 2-core machine
    imports streamlit slowly."""
    proc = subprocess.Popen(command(run_dir, port, host=host), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.5)
    stop_server(proc)
    raise ActionBenchError(f"streamlit did not start (exit code {proc.returncode})")


def stop_server(proc: subprocess.Popen) -> None:
    """Kill a server from :func:`start_server` and its process group at once (no cleanup)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _check_run(run_dir: Path) -> None:
    if not (run_dir / "manifest").is_dir() and not (run_dir / "manifest.csv").exists():
        raise ActionBenchError(f"{run_dir}: not a run folder (no manifest; make one with `actionbench run`)")


def link_base(args) -> str:
    """Where raters reach the app: ``--public-url`` (a reverse proxy), else http://HOST:PORT
    with this machine's name for a wildcard ``--host``."""
    if args.public_url:
        return args.public_url
    host = args.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    elif host == "127.0.0.1":
        host = "localhost"
    return f"http://{host}:{args.port}/"


def _raters_per_image(text: str) -> int | None:
    if text == "all":
        return None
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of raters, or 'all'") from None
    if k < 1:
        raise argparse.ArgumentTypeError("at least 1 (or 'all')")
    return k


def _update_design(run_dir: Path, args) -> bool:
    """Apply the design flags to ``study.json``; True when one was given."""
    from dataclasses import replace

    from annotate_app import invites

    changes = {}
    if args.raters_per_image is not False:
        changes["raters_per_image"] = args.raters_per_image
    for flag, key in (("gold_per_rater", "gold_per_rater"), ("checks_every", "checks_every"), ("study_seed", "seed")):
        if getattr(args, flag) is not None:
            changes[key] = getattr(args, flag)
    if not changes and (not args.raters or (run_dir / invites.STUDY_FILE).exists()):
        return False  # nothing to change (the first invitation writes the defaults down)
    design = replace(invites.load_design(run_dir), **changes)
    invites.save_design(run_dir, design)
    k = "every image to every rater" if design.raters_per_image is None else f"{design.raters_per_image} raters per image"
    print(f"study design ({run_dir / invites.STUDY_FILE}): {k}, {design.gold_per_rater} gold items per rater, "
          f"an attention check per {design.checks_every} images (at least {design.min_checks}), seed {design.seed}")
    return bool(changes)


def _list_raters(run_dir: Path) -> None:
    import datetime

    from annotate_app import invites
    from evaluate.ratings import read_ratings

    raters = invites.load_raters(run_dir)
    if not raters:
        print(f"{run_dir}: no invited raters (open mode); invite with --raters NAME,NAME")
        return
    r = read_ratings(run_dir).dropna(subset=["action_ok", "subject_ok"])
    rated = r.rater.value_counts().to_dict()
    print(f"{'rater':<20} {'status':<8} {'rated':>6}  created")
    for name in sorted(raters):
        info = raters[name]
        when = datetime.datetime.fromtimestamp(info.get("created") or 0).isoformat(timespec="seconds")
        print(f"{name:<20} {'revoked' if info.get('revoked') else 'active':<8} {rated.get(name, 0):>6}  {when}")


def cmd_annotate(args) -> None:
    from annotate_app import invites

    run_dir = Path(args.run_dir)
    _check_run(run_dir)
    admin = False
    if args.raters:
        names = invites.parse_names(args.raters)
        existing = invites.load_raters(run_dir)
        tokens = invites.issue(run_dir, names)
        base = link_base(args)
        print(f"invite links ({len(tokens)}); each is its rater's password, shown only now "
              f"(only sha256 hashes are kept, in {run_dir / invites.RATERS_FILE}):")
        for name, token in tokens.items():
            note = "  (re-issued: the old link no longer works)" if name in existing else ""
            print(f"  {name}: {invites.link(base, token)}{note}")
        admin = True
    if args.revoke:
        names = invites.parse_names(args.revoke)
        invites.revoke(run_dir, names)
        print(f"revoked: {', '.join(names)} (their links stop working now; their answers so far are kept)")
        admin = True
    admin = _update_design(run_dir, args) or admin
    if admin and invites.has_raters(run_dir):
        design, active = invites.load_design(run_dir), invites.active_raters(run_dir)
        if design.raters_per_image is not None and design.raters_per_image >= len(active):
            print(f"note: {design.raters_per_image} raters per image with {len(active)} active raters: "
                  "every rater rates every image (no extra rater left for disagreements)")
    if args.list_raters:
        _list_raters(run_dir)
        admin = True
    if args.export is not None:
        from annotate_app.export import export

        for path in export(run_dir, args.export or None):
            print(f"wrote {path}")
        admin = True
    if admin:
        return
    invited = invites.has_raters(run_dir)
    if args.host not in LOOPBACK and not invited:
        raise ActionBenchError(f"{run_dir}: no invited raters ({invites.RATERS_FILE}), so anybody reaching "
                               f"{args.host}:{args.port} could rate under any name; invite raters first "
                               f"(`actionbench annotate {run_dir} --raters alice,bob`) or serve on 127.0.0.1")
    mode = (f"invite mode, {len(invites.active_raters(run_dir))} active raters: open the links --raters printed"
            if invited else "open mode: one local user types a name")
    print(f"rating app for {run_dir} on http://{args.host}:{args.port} ({mode}; answers go to {run_dir / 'ratings.sqlite'})")
    raise SystemExit(subprocess.call(command(run_dir, args.port, not args.open_browser, args.host)))


def add_parser(sub) -> None:
    p = sub.add_parser("annotate", help="rate a run's images in the browser (Streamlit); invite raters, export",
                       description="The paper's human protocol: exemplars, one image, the subject's name; "
                                   "'action right?' and 'subject right?'. Answers go to RUN_DIR/ratings.sqlite. "
                                   "Without study flags it serves the app; with them it changes or reads the study "
                                   "and exits (docs/evaluation.md#3-human-ratings).")
    p.add_argument("run_dir", help="run folder made by `actionbench run`")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for a lab network, "
                        "invited raters only)")
    p.add_argument("--open-browser", action="store_true", help="open a browser window on start")
    g = p.add_argument_group("study (change or read the run folder, then exit)")
    g.add_argument("--raters", metavar="NAME,NAME", help="invite raters: print one secret link each (RUN_DIR/raters.json "
                                                         "keeps only hashes); an invited name gets a new link, the old one stops working")
    g.add_argument("--revoke", metavar="NAME,NAME", help="revoke these raters' links (their answers are kept)")
    g.add_argument("--list-raters", action="store_true", help="list invited raters, their status and images rated (never tokens)")
    g.add_argument("--public-url", metavar="URL", help="base of the printed links, e.g. https://rate.lab.example/ behind a "
                                                       "reverse proxy (default http://HOST:PORT/)")
    g.add_argument("--raters-per-image", type=_raters_per_image, default=False, metavar="K|all",
                   help="K raters per image, balanced shares (RUN_DIR/study.json; default all: every rater rates every image)")
    g.add_argument("--gold-per-rater", type=int, metavar="N", help="gold items (benchmark exemplars, known answers) per rater (default 4)")
    g.add_argument("--checks-every", type=int, metavar="M", help="one attention check per M images, at least 2 (default 50)")
    g.add_argument("--study-seed", type=int, metavar="S", help="seed of the assignment, gold items and checks (default 0)")
    g.add_argument("--export", nargs="?", const="", metavar="DIR",
                   help="write the raw answers (CSV, Parquet) and raters_quality.csv to DIR (default RUN_DIR/export)")
    p.set_defaults(func=cmd_annotate)
