"""Shared helpers for the online endpoint and deploy tests: a registered model in a
temporary workspace, CLI calls in-process, and process-leak checks."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
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
    from amlocal.assets import create_environment

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
