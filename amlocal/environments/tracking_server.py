"""An MLflow tracking server for the workspace, for steps whose MLflow is not the project's.

The workspace's SQLite store has the schema of the project's MLflow; an older client refuses
to open it (and a newer one would migrate it). Azure ML logs over REST whatever the client's
version, so such steps get `MLFLOW_TRACKING_URI=http://127.0.0.1:<port>`: a server that the
project's MLflow runs on the same store, started the first time a step needs it and stopped
when the runner exits (or dies: it gets SIGTERM from the kernel then).
"""

from __future__ import annotations

import atexit
import ctypes
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from amlocal.errors import AmlocalError

_START_TIMEOUT_S = 120.0
_lock = threading.Lock()
_servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}


def uri(store_uri: str, home: Path) -> str:
    """The HTTP URI of a server on `store_uri` (started now if needed)."""
    with _lock:
        found = _servers.get(store_uri)
        if found is not None and found[0].poll() is None:
            return found[1]
        proc, url = _start(store_uri, home)
        _servers[store_uri] = (proc, url)
        return url


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
        _servers.clear()


atexit.register(stop_all)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start(store_uri: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = home / "tracking-server.log"
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store_uri, "--registry-store-uri", store_uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-serve-artifacts", "--default-artifact-root", str(home / "mlartifacts"),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AmlocalError(
                f"the workspace's MLflow tracking server exited with code {proc.returncode} "
                f"(see {log_path})"
            )
        try:
            with opener.open(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AmlocalError(f"the workspace's MLflow tracking server did not start (see {log_path})")
