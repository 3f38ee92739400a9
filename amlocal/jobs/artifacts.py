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


def bind(ws: Workspace, r: Any, run_id: str | None) -> bool:
    """Point the step's `artifacts` output at its artifact location (before it starts);
    True when that is the MLflow run's own folder (./outputs then goes there only once)."""
    folder = None
    if run_id:
        from amlocal import tracking

        folder = tracking.run_artifact_dir(ws, run_id)
    out = r.outputs.get(NAME) or {"type": "uri_folder", "mode": "rw_mount"}
    out.update(
        local_path=str(folder or ws.job_dir(r.job_name) / NAME),
        uri=f"azureml://jobs/{r.job_name}/outputs/{NAME}",
    )
    declared = NAME in r.outputs
    r.outputs[NAME] = out
    if declared and f"outputs.{NAME}" in (r.component.get("command") or ""):
        from amlocal.jobs import expressions as ex

        r.command = ex.render(
            r.component.get("command") or "",
            r.input_values,
            {k: v["local_path"] for k, v in r.outputs.items()},
        )
    return folder is not None


def collect(r: Any, cwd: Path, log_path: Path) -> None:
    """Copy ./outputs, ./logs and the job's log into its artifacts folder, as Azure's upload
    does after the process exits (a failed job keeps them too)."""
    out = r.outputs.get(NAME)
    if out is None:
        return
    dest = Path(out["local_path"])
    dest.mkdir(parents=True, exist_ok=True)
    for sub in ("outputs", "logs"):
        src = cwd / sub
        if src.is_dir() and any(src.iterdir()):
            shutil.copytree(src, dest / sub, dirs_exist_ok=True)
    if log_path.is_file():
        (dest / "user_logs").mkdir(exist_ok=True)
        shutil.copy2(log_path, dest / "user_logs" / log_path.name)
