"""MLflow run names: a trial by its parameters, a job by its display name."""

from __future__ import annotations

from pathlib import Path

from amlocal import run_names
from amlocal.workspace import Workspace


def test_trial_names_read_like_studio() -> None:
    params = {"model_family": "svc", "C": 4.2001, "n_neighbors": 5}
    assert run_names.trial(params) == "svc C=4.2 n_neighbors=5"
    assert run_names.trial({"lr": 0.000123456}) == "lr=0.000123"


def test_for_job_reads_the_record(tmp_path: Path) -> None:
    ws = Workspace(home=tmp_path)
    ws.store.put("job", "pipe_train", {"name": "pipe_train", "display_name": "train"})
    ws.store.put("job", "sw_0", {"name": "sw_0", "parameters": {"family": "knn", "k": 3}})
    assert run_names.for_job(ws, "pipe_train") == "train"
    assert run_names.for_job(ws, "sw_0") == "knn k=3"
    assert run_names.for_job(ws, "unknown") == "unknown"
