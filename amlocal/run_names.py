"""MLflow run names people can read, as Azure ML studio shows jobs: a pipeline's or a step's
run is named by its display name (`nightly-train`, `prep`), a sweep trial's by its sampled
parameters (`svc C=4.2 n_neighbors=5`). The job name stays on the run as the
`azureml.jobName` tag, so `job show`'s `mlflow.runId` and the run still find each other.
"""

from __future__ import annotations

from typing import Any

from amlocal.workspace import Workspace


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def trial(params: dict[str, Any]) -> str:
    """Categorical (text) values first, bare, then `name=value` for the numbers."""
    words = [str(v) for v in params.values() if isinstance(v, str)]
    numbers = [f"{k}={_value(v)}" for k, v in params.items() if not isinstance(v, str)]
    return " ".join(words + numbers)[:250] or "trial"


def used(params: dict[str, Any], logged: set[str] | dict[str, Any]) -> dict[str, Any]:
    """The sampled parameters a trial used: those it logged as MLflow params, when it logged
    any of them (a knn trial that logs `model_family` and `n_neighbors` is not named by the
    `C` it was also handed); all of them when it logged none."""
    kept = {k: v for k, v in params.items() if k in logged}
    return kept or params


def for_job(ws: Workspace, job_name: str) -> str:
    """The run name of job `job_name` (its record in the store), else the job name."""
    record = ws.store.get("job", job_name)
    if not record:
        return job_name
    params = record.get("parameters")
    if isinstance(params, dict) and params:
        return trial(params)
    return str(record.get("display_name") or record.get("step_name") or job_name)[:250]
