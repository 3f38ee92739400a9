"""Step kinds other than `command` (parallel, sweep, pipeline components) plug in here.

Contract: a module listed in MODULES defines

    run(execution, job_name, step, bound, targets) -> (status, outputs)

- `execution` is an `amlocal.jobs.pipeline.Execution`: use `execution.ws`, `.base`,
  `.datastore`, `.cancel` (a threading.Event: stop promptly when set), `.update_job(job,
  **fields)` (status/properties/inputs/outputs/`_log`: the file `job stream` tails),
  `.mlflow_run(job, parent_run_id=None)` / `.end_mlflow_run(run_id, status)`,
  `.step_env_vars(job, run_id)` (MLFLOW_* and AZUREML_* variables for child processes),
  `.warn_environment(step["env"])`, `.find_reusable(step, key, job)` /
  `.remember(step, key, job)` for reuse with a fingerprint from `amlocal.jobs.reuse`.
- `step` is the planned step: `kind`, `component` (azure-ai-ml's `_to_dict()` of the
  component, code paths absolute), `spec` (the whole node), `env` (resolved environment).
- `bound` / `targets`: inputs evaluated in the parent context and output declarations;
  `amlocal.jobs.run.resolve_io(...)` turns them into values, local paths and reuse identity.
- Return a terminal status ("Completed" | "Failed" | "Canceled") and the outputs dict
  (name -> {type, mode, local_path, uri}) that downstream bindings read.
For a standalone job (no pipeline) `job_name` is the job itself.
"""

from __future__ import annotations

import importlib
from typing import Any

from amlocal.errors import InvalidInput

MODULES = {
    "parallel": "amlocal.jobs.parallel_step",
    "sweep": "amlocal.jobs.sweep_step",
    "pipeline": "amlocal.jobs.pipeline_step",
}


def run(
    execution: Any,
    job: str,
    step: dict[str, Any],
    bound: dict[str, Any],
    targets: dict[str, dict[str, Any]],
) -> tuple[str, dict[str, Any]]:
    module = MODULES.get(step["kind"])
    try:
        mod = importlib.import_module(module) if module else None
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        mod = None
    if mod is None:
        raise InvalidInput(f"step '{step['name']}': type '{step['kind']}' is not supported yet")
    return mod.run(execution, job, step, bound, targets)
