"""MLflow, imported only when a job really runs: one run per job, pipeline steps nested.

Runs are created before a step starts and exported through MLFLOW_RUN_ID, as Azure ML does,
so scripts log without calling `start_run`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from amlocal.workspace import Workspace

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(ws: Workspace) -> Any:
    """An MlflowClient on the workspace's tracking store (and registry).

    No process-wide state is touched (no MLFLOW_TRACKING_URI, no mlflow.set_tracking_uri):
    two workspaces, or a workspace and a user's own MLflow calls, can share a process.
    """
    uri = ws.mlflow_tracking_uri
    with _lock:
        if uri not in _clients:
            from mlflow.tracking import MlflowClient

            for noisy in ("mlflow", "mlflow.store.db.utils", "alembic"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _clients[uri]


def download_model(ws: Workspace, name: str, version: str, dest: str) -> None:
    """Download a registered model version's files from the workspace's registry.

    MLflow resolves `models:/` through its process-wide URIs whatever is passed in, so they
    are set for the download only and restored after (unset stays unset, so a later
    MLFLOW_TRACKING_URI still wins).
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.artifacts import download_artifacts

    uri = ws.mlflow_tracking_uri
    with _lock:
        saved = tracking_utils._tracking_uri, registry_utils._registry_uri
        tracking_utils._tracking_uri, registry_utils._registry_uri = uri, uri
        try:
            download_artifacts(
                artifact_uri=f"models:/{name}/{version}",
                dst_path=dest,
                tracking_uri=uri,
                registry_uri=uri,
            )
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved


def experiment_id(ws: Workspace, name: str) -> str:
    c = client(ws)
    with _lock:
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        artifact_location = None
        if ws.mlflow_tracking_uri.startswith("sqlite:"):
            # sqlite stores default to ./mlruns in the cwd; keep artifacts in the workspace.
            artifact_location = (ws.mlflow_artifact_root / name).as_uri()
        try:
            return c.create_experiment(name, artifact_location=artifact_location)
        except Exception:  # created concurrently by another process
            return c.get_experiment_by_name(name).experiment_id


def start_run(
    ws: Workspace,
    experiment: str,
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    c = client(ws)
    all_tags = {"mlflow.runName": run_name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(experiment_id(ws, experiment), run_name=run_name, tags=all_tags)
    return run.info.run_id


def end_run(ws: Workspace, run_id: str, status: str) -> None:
    """Map an Azure ML job status to MLflow's run status."""
    mlflow_status = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}.get(
        status, "FAILED"
    )
    client(ws).set_terminated(run_id, mlflow_status)


def log_outputs_dir(ws: Workspace, run_id: str, path: str) -> None:
    """Azure ML uploads ./outputs of a command job as run artifacts under outputs/."""
    client(ws).log_artifacts(run_id, path, artifact_path="outputs")
