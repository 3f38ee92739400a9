"""The MLflow UI as amlocal's "studio": `make ui` serves the workspace's own store (the one
`amlocal workspace show` reports, so AMLOCAL_HOME and MLFLOW_TRACKING_URI are honoured), and
`Web View:` / `--web` print the UI address of a job's run instead of a database path.

`python -m amlocal.ui` runs the UI; AMLOCAL_UI_PORT (default 5000) picks its port.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Any

from amlocal.store import read_row
from amlocal.workspace import Workspace

HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def _port() -> int:
    raw = os.environ.get("AMLOCAL_UI_PORT", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else DEFAULT_PORT


def _remote(ws: Workspace) -> str | None:
    """The tracking server's own address when the workspace logs to one (it has its UI)."""
    uri = ws.mlflow_tracking_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def base_url(ws: Workspace) -> str:
    return _remote(ws) or f"http://{HOST}:{_port()}"


def _experiment_of(ws: Workspace, run_id: str) -> str | None:
    """The run's experiment id, read from a SQLite store without importing MLflow."""
    from amlocal.tracking import _sqlite_path

    db = _sqlite_path(ws.mlflow_tracking_uri)
    if db is None or not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = read_row(con, "SELECT experiment_id FROM runs WHERE run_uuid = ?", (run_id,))
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def run_url(ws: Workspace, run_id: str) -> str | None:
    """`http://127.0.0.1:5000/#/experiments/<id>/runs/<run>`, or None if unknown."""
    experiment = _experiment_of(ws, run_id)
    if experiment is None:
        return None
    return f"{base_url(ws)}/#/experiments/{experiment}/runs/{run_id}"


def job_url(ws: Workspace, record: dict[str, Any]) -> str:
    """The UI address of a job: its MLflow run when it has one, else the UI itself."""
    run_id = (record.get("properties") or {}).get("mlflow.runId")
    return (run_id and run_url(ws, run_id)) or f"{base_url(ws)}/"


def main() -> int:
    ws = Workspace()
    remote = _remote(ws)
    if remote:
        print(f"amlocal: this workspace logs to the MLflow server {remote}: open its UI there.")
        return 0
    url = f"http://{HOST}:{_port()}/"
    print(f"amlocal: MLflow UI on {ws.mlflow_tracking_uri} at {url} (Ctrl-C stops it)", flush=True)
    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", ws.mlflow_tracking_uri]
    # One worker: a single user's UI, and no multi-process supervisor (which, on a busy
    # machine, kills workers that answer its health ping late and never comes up).
    argv += ["--host", HOST, "--port", str(_port()), "--workers", "1"]
    os.execv(sys.executable, argv)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
