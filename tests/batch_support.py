"""Shared helpers for the batch tests: a workspace driven through the real CLI, a registered
MLflow diabetes model, predictions computed in-process, and a check for leftover processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
from cli_support import Project

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
MODEL_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: diabetes-model
type: mlflow_model
path: ./model
"""


def register_model(project: Project) -> Path:
    """Save an MLflow sklearn Ridge as training does (cloudpickle, double signature) and
    register it as diabetes-model; returns the saved folder."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import Ridge

    frame = pd.read_csv(ROOT / "data" / "diabetes.csv")
    x = frame[FEATURES].astype("float64")
    model = Ridge(alpha=1.0).fit(x, frame["target"])
    dest = project.root / "model"
    mlflow.sklearn.save_model(
        model,
        str(dest),
        serialization_format="cloudpickle",
        signature=infer_signature(x, model.predict(x)),
    )
    project.write("model.yml", MODEL_YML)
    project.run("model", "create", "-f", "model.yml", "-o", "none")
    return dest


def load_model(model_dir: Path):
    import cloudpickle

    return cloudpickle.loads((model_dir / "model.pkl").read_bytes())


def expected(model, files: list[Path]) -> pd.DataFrame:
    """In-process predictions: one row per input row, by file then row."""
    parts = []
    for f in files:
        frame = pd.read_csv(f)
        parts.append(
            pd.DataFrame(
                {"row": range(len(frame)), "prediction": model.predict(frame), "file": f.name}
            )
        )
    return pd.concat(parts, ignore_index=True)


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=None, names=["row", "prediction", "file"])


def wait_status(project: Project, name: str, statuses: set[str], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = project.json("job", "show", "-n", name)
        if job["status"] in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not reach {statuses}: {job.get('status')}")


def processes_of(home: Path) -> list[int]:
    """Live processes started for this workspace (runner, workers: they inherit
    AMLOCAL_HOME), excluding zombies."""
    needle = f"AMLOCAL_HOME={home}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z" and needle in env.split(b"\0"):
            pids.append(int(d.name))
    return pids


def assert_no_processes(home: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(home) == [], "processes left behind"
