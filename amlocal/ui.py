"""The MLflow UI (`make ui`) on the workspace's own store (the one `amlocal workspace show`
reports, so AMLOCAL_HOME and MLFLOW_TRACKING_URI are honoured), and the MLflow links the CLI
prints beside the studio's (`amlocal.studio`).

`python -m amlocal.ui` runs the UI; AMLOCAL_UI_PORT (default 5000) picks its port. A busy
port fails at once (exit 2, nothing started); "ready" is printed only once the server
answers; the port it serves on is recorded (ui.json) so links printed meanwhile use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from amlocal.ports import from_env, recorded
from amlocal.state import write_json
from amlocal.store import read_row
from amlocal.workspace import Workspace

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
STATE_FILE = "ui.json"  # {"pid", "port"} of the running `make ui`, under the workspace home
START_TIMEOUT = 300.0  # MLflow 3's server took 52-126 s to answer on a loaded machine


def _port() -> int:
    return from_env("AMLOCAL_UI_PORT", DEFAULT_PORT)


def _running_port(home: Path) -> int | None:
    """The port of this workspace's running `make ui`, if one runs."""
    return recorded(home / STATE_FILE)


def _remote(ws: Workspace) -> str | None:
    """The tracking server's own address when the workspace logs to one (it has its UI)."""
    uri = ws.mlflow_tracking_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def base_url(ws: Workspace) -> str:
    return _remote(ws) or f"http://{HOST}:{_running_port(ws.home) or _port()}"


def _experiment_in(db: Path, run_id: str) -> str | None:
    """The run's experiment id, read from a SQLite store without importing MLflow."""
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = read_row(con, "SELECT experiment_id FROM runs WHERE run_uuid = ?", (run_id,))
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def run_url_in(db: Path, run_id: str, base: str | None = None) -> str | None:
    """A run's MLflow UI address in the store `db` (the studio's links, which have no
    Workspace object); `base` defaults to the local UI's address."""
    experiment = _experiment_in(db, run_id)
    if experiment is None:
        return None
    if base is None:
        base = f"http://{HOST}:{_running_port(db.parent) or _port()}"
    return f"{base}/#/experiments/{experiment}/runs/{run_id}"


def run_url(ws: Workspace, run_id: str) -> str | None:
    """`http://127.0.0.1:5000/#/experiments/<id>/runs/<run>`, or None if unknown."""
    from amlocal.tracking import _sqlite_path

    db = _sqlite_path(ws.mlflow_tracking_uri)
    return None if db is None else run_url_in(db, run_id, base_url(ws))


def job_url(ws: Workspace, record: dict[str, Any]) -> str:
    """The UI address of a job: its MLflow run when it has one, else the UI itself."""
    run_id = (record.get("properties") or {}).get("mlflow.runId")
    return (run_id and run_url(ws, run_id)) or f"{base_url(ws)}/"


def _busy(port: int) -> str | None:
    """Why `port` cannot be served on (None when it is free)."""
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _answers(url: str) -> bool:
    # Imported here, not at the top: every `job create` imports this module for its MLflow
    # link, and urllib.request (http.client, ssl, email) is most of the stdlib it would add.
    import urllib.request

    try:
        with urllib.request.urlopen(url + "health", timeout=2) as r:  # noqa: S310 (loopback)
            return bool(r.status == 200)
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and every process it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    ws = Workspace()
    remote = _remote(ws)
    if remote:
        print(f"amlocal: this workspace logs to the MLflow server {remote}: open its UI there.")
        return 0
    port = _port()
    url = f"http://{HOST}:{port}/"
    why = _busy(port)
    if why:
        sys.stderr.write(
            f"ERROR: make ui: {HOST}:{port} is in use ({why}); pick a free port with "
            f"UI_PORT=<port>, or open the studio instead (`make studio`)\n"
        )
        return 2
    print(f"amlocal: MLflow UI on {ws.mlflow_tracking_uri} at {url} (Ctrl-C stops it)", flush=True)
    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", ws.mlflow_tracking_uri]
    # One worker: a single user's UI, and no multi-process supervisor (which, on a busy
    # machine, kills workers that answer its health ping late and never comes up).
    argv += ["--host", HOST, "--port", str(port), "--workers", "1"]
    log = ws.home / "ui.log"
    state = ws.home / STATE_FILE
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    write_json(state, {"pid": proc.pid, "port": port})
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                sys.stderr.write(
                    f"ERROR: make ui: the MLflow server did not start; {log}:\n{tail}\n"
                )
                return 1
            time.sleep(0.5)
        print(f"amlocal: MLflow UI ready at {url}", flush=True)
        return proc.wait() or 0
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(proc)
        with contextlib.suppress(OSError):
            state.unlink()


if __name__ == "__main__":
    raise SystemExit(main())
