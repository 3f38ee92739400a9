"""One step's (or job's) detail for the graph's side panel: inputs and outputs with their
paths, the tail of its log, its metrics and its MLflow run. The log is read only from
`jobs/<name>/user_logs/` of the job itself (or of the job a reused step reused), never from
a path a record names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal import names
from amlocal.errors import InvalidInput
from amlocal.studio.readonly import Mlflow, valid_name

TAIL_BYTES = 8192


def _log_tail(home: Path, job: dict[str, Any]) -> str:
    props = job.get("properties") or {}
    for owner in (props.get("azureml.reusedrunid"), job.get("name")):
        if not owner or not valid_name(str(owner)):
            continue
        try:
            log = names.under(home, "jobs", str(owner), "user_logs", "std_log.txt")
        except InvalidInput:
            continue
        if log.is_file():
            with log.open("rb") as f:
                f.seek(max(0, log.stat().st_size - TAIL_BYTES))
                return f.read().decode("utf-8", "replace")
    return ""


def _io(values: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            out[str(key)] = {
                "type": value.get("type"),
                "path": value.get("path") or value.get("uri"),
                "local_path": value.get("local_path"),
            }
        else:
            out[str(key)] = {"value": value}
    return out


def detail(home: Path, mlflow: Mlflow, job: dict[str, Any], run_link: str | None) -> dict[str, Any]:
    props = job.get("properties") or {}
    run_id = props.get("mlflow.runId")
    return {
        "name": job.get("name"),
        "display_name": job.get("display_name"),
        "status": job.get("status"),
        "type": job.get("type"),
        "reused_from": props.get("azureml.reusedrunid"),
        "inputs": _io(job.get("inputs")),
        "outputs": _io(job.get("outputs")),
        "error": (job.get("error") or {}).get("message"),
        "log_tail": _log_tail(home, job),
        "metrics": mlflow.metrics(str(run_id)) if run_id else {},
        "mlflow_run": run_link,
    }
