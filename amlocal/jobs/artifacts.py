"""A job's default `artifacts` output: what it wrote to ./outputs and ./logs, and its log.

Azure ML uploads a command job's ./outputs and ./logs to the job's artifact location, which
is also its MLflow run's artifact root, and addresses it as the reserved output `artifacts`:
`azureml://jobs/<job>/outputs/artifacts/paths/outputs/model` is the file the job wrote to
./outputs/model, `.../paths/model` what it logged with `mlflow.<flavor>.log_model(.., "model")`
(`runs:/<run>/model`). A pipeline step that declares `outputs: {artifacts: }` hands that same
folder downstream. Here the folder is the MLflow run's artifact folder when the store is the
workspace's own SQLite one, otherwise `jobs/<job>/artifacts/` (the run gets ./outputs through
MLflow as before).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from amlocal.workspace import Workspace

NAME = "artifacts"


def locate(ws: Workspace, job: str, outputs: dict[str, Any], run_id: str | None) -> bool:
    """Point the job's `artifacts` output (in `outputs`, added when not declared) at its
    artifact location; True when that is the MLflow run's own folder (./outputs then goes
    there only once)."""
    folder = None
    if run_id:
        from amlocal import tracking

        folder = tracking.run_artifact_dir(ws, run_id)
    out = outputs.get(NAME) or {"type": "uri_folder", "mode": "rw_mount"}
    out.update(
        local_path=str(folder or ws.job_dir(job) / NAME),
        uri=f"azureml://jobs/{job}/outputs/{NAME}",
    )
    outputs[NAME] = out
    return folder is not None


def bind(
    ws: Workspace, r: Any, run_id: str | None, extra: dict[str, dict[str, Any]] | None = None
) -> bool:
    """`locate` for a command job (a step or a sweep trial) about to start, rendering its
    command again when it names `${{outputs.artifacts}}` (`extra`: more expression roots,
    a trial's `search_space`)."""
    declared = NAME in r.outputs
    in_run = locate(ws, r.job_name, r.outputs, run_id)
    if declared and f"outputs.{NAME}" in (r.component.get("command") or ""):
        from amlocal.jobs import expressions as ex

        r.command = ex.render(
            r.component.get("command") or "",
            r.input_values,
            {k: v["local_path"] for k, v in r.outputs.items()},
            extra=extra,
        )
    return in_run


def collect(outputs: dict[str, Any], cwd: Path, log_path: Path, logs: Path | None = None) -> None:
    """Copy ./outputs, ./logs (or `logs`, where a parallel job's executor writes them) and
    the job's log into its artifacts folder, as Azure's upload does after the process exits
    (a failed job keeps them too)."""
    out = outputs.get(NAME)
    if out is None:
        return
    dest = Path(out["local_path"])
    dest.mkdir(parents=True, exist_ok=True)
    for sub, src in (("outputs", cwd / "outputs"), ("logs", logs or cwd / "logs")):
        if src.is_dir() and any(src.iterdir()):
            shutil.copytree(src, dest / sub, dirs_exist_ok=True)
    if log_path.is_file():
        (dest / "user_logs").mkdir(exist_ok=True)
        shutil.copy2(log_path, dest / "user_logs" / log_path.name)
