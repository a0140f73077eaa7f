"""``actionbench annotate RUN_DIR``: start the rating app on a run folder."""

from __future__ import annotations

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


def command(run_dir: str | Path, port: int = 8501, headless: bool = True) -> list[str]:
    """The ``streamlit run`` command line that serves the app for ``run_dir``."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false",
            "--", str(Path(run_dir).resolve())]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: str | Path, port: int, timeout: float = 300) -> subprocess.Popen:
    """Serve the app for ``run_dir`` in the background (its own process group) and return once
    Streamlit answers its health check; ``timeout`` is generous: a loaded 2-core machine
    imports streamlit slowly."""
    proc = subprocess.Popen(command(run_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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


def cmd_annotate(args) -> None:
    run_dir = Path(args.run_dir)
    if not (run_dir / "manifest").is_dir() and not (run_dir / "manifest.csv").exists():
        raise ActionBenchError(f"{run_dir}: not a run folder (no manifest; make one with `actionbench run`)")
    print(f"rating app for {run_dir} on http://localhost:{args.port} (answers go to {run_dir / 'ratings.sqlite'})")
    raise SystemExit(subprocess.call(command(run_dir, args.port, not args.open_browser)))


def add_parser(sub) -> None:
    p = sub.add_parser("annotate", help="rate a run's images in the browser (Streamlit)",
                       description="The paper's human protocol: exemplars, one image, the subject's name; "
                                   "'action right?' and 'subject right?'. Answers go to RUN_DIR/ratings.sqlite.")
    p.add_argument("run_dir", help="run folder made by `actionbench run`")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--open-browser", action="store_true", help="open a browser window on start")
    p.set_defaults(func=cmd_annotate)
