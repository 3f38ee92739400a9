"""Shared helpers for the online endpoint and deploy tests: a registered model in a
temporary workspace, CLI calls in-process, process-leak checks, and the front door's
listener served from a thread."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENDPOINT_DIR = REPO / "endpoints" / "online" / "diabetes"
MLFLOW_ENDPOINT_DIR = REPO / "endpoints" / "online" / "diabetes-mlflow"
MODEL_NAME = "diabetes-model"


def fit_model(alpha: float = 1.0) -> Any:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(as_frame=True, scaled=False, return_X_y=True)
    return Ridge(alpha=alpha).fit(X, y), X


def save_model(model: Any, X: Any, dest: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(
        model,
        str(dest),
        serialization_format="cloudpickle",
        signature=infer_signature(X, model.predict(X)),
    )
    return dest


def register(ws: Any, path: Path, name: str = MODEL_NAME) -> str:
    """Register a model folder in the workspace's MLflow registry; returns the version."""
    from amlocal.tracking import client

    c = client(ws)
    try:
        c.get_registered_model(name)
    except Exception:
        c.create_registered_model(name)
    mv = c.create_model_version(name, source=str(path), tags={"azureml.model_type": "mlflow_model"})
    return str(mv.version)


def register_score_env(ws: Any) -> None:
    from amlocal.assets.environment import create_environment

    create_environment(ws, REPO / "environments" / "score.yml")


def cli(*argv: str, ok: bool = True) -> Any:
    """Run `amlocal <argv>` in-process; returns parsed JSON (or text) and checks the exit."""
    from amlocal.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(list(argv))
    if ok:
        assert code == 0, f"amlocal {' '.join(argv)} exited {code}"
    out = buf.getvalue().strip()
    try:
        value = json.loads(out) if out else None
    except ValueError:
        value = out
    return (value, code) if not ok else value


def descendants_alive(marker: str) -> list[int]:
    """Pids of processes whose command line contains `marker` (our home dir or module)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
            state = (p / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmd and state != "Z":
            pids.append(int(p.name))
    return pids


@contextmanager
def workspace_env(home: Path) -> Iterator[Any]:
    """AMLOCAL_HOME and MLFLOW_TRACKING_URI point into `home` until the block ends (then
    they are restored); yields its Workspace."""
    saved = {k: os.environ.get(k) for k in ("AMLOCAL_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["AMLOCAL_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    try:
        from amlocal.workspace import Workspace

        yield Workspace()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def diabetes_workspace(ws: Any) -> tuple[Any, Any]:
    """Register the diabetes model (version 1) and the score environment in `ws`; returns
    the fitted model and its training features."""
    model, X = fit_model()
    register(ws, save_model(model, X, ws.home / "model-src"))
    register_score_env(ws)
    return model, X


def kill_leftovers(home: Path) -> list[int]:
    """SIGKILL the processes still running from `home` (a failing test leaves none behind);
    returns their pids, for the caller to assert there were none."""
    leftovers = descendants_alive(str(home))
    for pid in leftovers:
        try:
            print("leftover", pid, Path(f"/proc/{pid}/cmdline").read_bytes(), file=sys.stderr)
        except OSError:
            pass
        os.kill(pid, signal.SIGKILL)
    return leftovers


class ServerThread:
    """The front door's listener (listener.Server) on a free 127.0.0.1 port, its event loop
    in a thread; `stop()` stops it gracefully (2 s grace)."""

    def __init__(self, handler: Any, precheck: Any = None, limits: Any = None) -> None:
        from amlocal.endpoints.daemon.listener import Server

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.server = Server(handler, precheck, limits)
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self.server.serve(self.sock, 2.0),)
        )
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()
