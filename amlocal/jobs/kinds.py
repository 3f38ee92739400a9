"""Step kinds other than `command` (parallel, sweep, pipeline components) plug in here: each
module defines `run(execution, job_name, step, bound_inputs, output_targets)` returning
(status, outputs) and writes its own job records through `execution`.
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
    except ModuleNotFoundError:
        mod = None
    if mod is None:
        raise InvalidInput(f"step '{step['name']}': type '{step['kind']}' is not supported yet")
    return mod.run(execution, job, step, bound, targets)
