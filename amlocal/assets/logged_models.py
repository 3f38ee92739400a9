"""Models a job logged with MLflow 3, by the URIs Azure gives them.

MLflow 3 stores `mlflow.<flavor>.log_model(..., name="model")` as a logged model under the
experiment's `models/m-<id>/artifacts/`, not under the run's artifacts. Azure resolves
`azureml://jobs/<job>/outputs/artifacts/paths/model` and `runs:/<job>/model` to it, the job
name standing for the run id (on Azure they are the same). Here the job's record names its
run (`properties["mlflow.runId"]`), and the logged model is found by its source run and name,
or, when the script logged it without `start_run` (MLflow 3 then records no source run), as
the model of that name logged in the run's experiment while the run was running.
"""

from __future__ import annotations

import re
from pathlib import Path

from amlocal.errors import NotFound
from amlocal.workspace import Workspace

RUNS_URI = re.compile(r"^runs:/(?P<run>[^/]+)/(?P<path>.+)$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def run_id_of(ws: Workspace, job_or_run: str) -> str | None:
    """The MLflow run of a job name (or a run id given as such)."""
    job = ws.store.get("job", job_or_run)
    if job is not None:
        return (job.get("properties") or {}).get("mlflow.runId")
    return job_or_run if _RUN_ID.match(job_or_run) else None


def logged_model_dir(ws: Workspace, run_id: str, name: str) -> Path | None:
    """The artifacts folder of the newest active model `name` that run `run_id` logged."""
    from amlocal import tracking

    location: str | None = None
    direct = tracking._fast(ws)
    if direct is not None:
        # A script that logs without `start_run` (the job's run is only MLFLOW_RUN_ID) leaves
        # the model unlinked: then it is the one logged in the run's experiment while it ran.
        row = (
            direct._connect()
            .execute(
                "SELECT m.artifact_location FROM logged_models m, runs r"
                " WHERE r.run_uuid = ? AND m.name = ? AND m.lifecycle_stage = 'active'"
                " AND (m.source_run_id = r.run_uuid OR (m.source_run_id IS NULL"
                " AND m.experiment_id = r.experiment_id"
                " AND m.creation_timestamp_ms >= r.start_time"
                " AND (r.end_time IS NULL OR m.creation_timestamp_ms <= r.end_time)))"
                " ORDER BY m.source_run_id IS NULL, m.creation_timestamp_ms DESC LIMIT 1",
                (run_id, name),
            )
            .fetchone()
        )
        location = row[0] if row else None
    else:
        c = tracking.client(ws)
        try:
            exp = c.get_run(run_id).info.experiment_id
            found = c.search_logged_models(
                experiment_ids=[exp],
                filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
                order_by=[{"field_name": "creation_time", "ascending": False}],
                max_results=1,
            )
        except Exception:
            found = []
        location = found[0].artifact_location if found else None
    folder = tracking._local_dir(location) if location else None
    return folder if folder is not None and folder.is_dir() else None


def resolve_in_run(ws: Workspace, job_or_run: str, artifacts: Path | None, path: str) -> Path:
    """`path` in a job's artifacts, or in the model it logged under the path's first part."""
    if artifacts is not None and (artifacts / path).exists():
        return artifacts / path
    run_id = run_id_of(ws, job_or_run)
    first, _, rest = path.strip("/").partition("/")
    model = logged_model_dir(ws, run_id, first) if run_id else None
    if model is not None and (model / rest if rest else model).exists():
        return model / rest if rest else model
    if artifacts is not None:
        return artifacts / path  # the caller reports the missing path
    raise NotFound(f"'{job_or_run}' is neither a job nor an MLflow run of this workspace")


def resolve_runs_uri(ws: Workspace, uri: str) -> Path | None:
    """`runs:/<job or run id>/<path>` as a local path, or None when `uri` is not one."""
    from amlocal import tracking

    m = RUNS_URI.match(uri)
    if m is None:
        return None
    run, path = m["run"], m["path"]
    job = ws.store.get("job", run)
    artifacts: Path | None = None
    if job is not None:
        out = (job.get("outputs") or {}).get("artifacts") or {}
        artifacts = Path(out["local_path"]) if out.get("local_path") else None
    if artifacts is None and (run_id := run_id_of(ws, run)):
        artifacts = tracking.run_artifact_dir(ws, run_id)
    return resolve_in_run(ws, run, artifacts, path)
