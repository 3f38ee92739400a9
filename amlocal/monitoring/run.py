"""A monitor firing is an ordinary command job (job list, job stream, an MLflow run).

Azure runs monitoring signals as a serverless Spark pipeline; amlocal submits one command
job whose step computes every signal (amlocal.monitoring.compute) in the project's Python,
logs the metrics to the job's MLflow run and writes the signals report as its `signals`
output. Its environment is an image without packages, so the step runs in the project's own
Python (where amlocal, scipy and MLflow are), never in a curated environment's venv.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from amlocal.monitoring.definition import computed
from amlocal.workspace import Workspace

if TYPE_CHECKING:
    from amlocal.jobs.types import Plan

PROP_MONITOR = "azureml.monitorName"
ENVIRONMENT = {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"}


def plan(ws: Workspace, record: dict[str, Any], run_time: str | None) -> Plan:
    """The monitor job's plan (schedules.definition.fire submits it like any firing's job);
    `run_time` is the firing's time (ISO 8601), the end of the data windows."""
    from amlocal.jobs import plan as job_plan

    name = record["name"]
    folder = ws.home / "schedules" / name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    spec = {
        "monitor": name,
        "home": str(ws.home),
        "base_dir": record["_action"]["base_dir"],
        "run_time": run_time,
        "create_monitor": computed(record["_action"]),
        "skipped": record["_action"].get("skipped") or {},
    }
    spec_file = folder / f"monitor-{stamp}.json"
    spec_file.write_text(json.dumps(spec, indent=2, default=str))
    job = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
        "type": "command",
        "display_name": f"{name}-{stamp}",
        "experiment_name": name,
        "description": f"Model monitor {name}: signals "
        + (", ".join(spec["create_monitor"]["monitoring_signals"]) or "none computed offline"),
        "command": "python -m amlocal.monitoring.compute --spec ${{inputs.spec}} --signals ${{outputs.signals}}",
        "inputs": {"spec": {"type": "uri_file", "path": f"./{spec_file.name}"}},
        "outputs": {"signals": {"type": "uri_folder"}},
        "environment": ENVIRONMENT,
    }
    job_file = folder / f"monitor-{stamp}.yml"
    job_file.write_text(yaml.safe_dump(job, sort_keys=False))
    return job_plan.load_plan(ws, job_file, [])


def report_path(ws: Workspace, job_name: str) -> Path | None:
    """The signals.json a finished monitor job wrote, if any."""
    job = ws.store.get("job", job_name) or {}
    out = (job.get("outputs") or {}).get("signals") or {}
    p = Path(out["local_path"]) / "signals.json" if out.get("local_path") else None
    return p if p is not None and p.is_file() else None
