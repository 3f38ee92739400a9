"""An MLflow tracking server for the workspace, for steps whose MLflow is not the project's.

The workspace's SQLite store has the schema of the project's MLflow; an older client refuses
to open it (and a newer one would migrate it). Azure ML logs over REST whatever the client's
version, so such steps get `MLFLOW_TRACKING_URI=http://127.0.0.1:<port>`: MLflow's own
server app (the project's MLflow, on the same store) in one process of its own, started the
first time a step needs it and stopped when the runner exits (or dies: the kernel sends it
SIGTERM then).

The step is not held back while the server imports MLflow (seconds): MLflow's client retries
a refused connection with backoff, and the step spends that time importing MLflow itself.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from pathlib import Path

from amlocal import procs
from amlocal.ports import free_port

_lock = threading.Lock()
_servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}


def uri(store_uri: str, home: Path) -> str:
    """The HTTP URI of a server on `store_uri`, started now if it is not running."""
    with _lock:
        found = _servers.get(store_uri)
        if found is not None and found[0].poll() is None:
            return found[1]
        proc, url = _start(store_uri, home)
        _servers[store_uri] = (proc, url)
        return url


def used_by(command: str, cwd: Path, max_files: int = 500) -> bool:
    """Whether a step may log to MLflow: its command or a Python file of its code snapshot
    mentions it (a step that never imports MLflow does not need the server started)."""
    if "mlflow" in command:
        return True
    for n, path in enumerate(cwd.rglob("*.py")):
        if n >= max_files:
            return True
        try:
            with path.open("rb") as f:
                if b"mlflow" in f.read(1_000_000):
                    return True
        except OSError:
            continue
    return False


def stop_all() -> None:
    with _lock:
        for proc, _ in _servers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in _servers.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _servers.clear()


atexit.register(stop_all)


def _start(store_uri: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", __name__, store_uri, str(port), str(home / "mlartifacts")]
    with (home / "tracking-server.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc, f"http://127.0.0.1:{port}"


def serve(store_uri: str, port: int, artifact_root: str) -> None:
    """Run MLflow's server app in this process (what `mlflow server` starts, without its job
    runner or a second process)."""
    from mlflow.server import constants as c

    procs.die_with_parent()  # never outlive the run that started it

    os.environ[c.BACKEND_STORE_URI_ENV_VAR] = store_uri
    os.environ[c.REGISTRY_STORE_URI_ENV_VAR] = store_uri
    os.environ[c.ARTIFACT_ROOT_ENV_VAR] = artifact_root
    os.environ["_MLFLOW_SGI_NAME"] = "uvicorn"
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    import uvicorn

    uvicorn.run("mlflow.server.fastapi_app:app", host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
