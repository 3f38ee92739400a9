"""Parallel run settings and their defaults: a model batch deployment's and a parallel
job's (the same runtime, different defaults), as one `ParallelSpec`."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput

# reference §25 (reference-yaml-deployment-batch): model batch deployment settings.
BATCH_DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "mini_batch_size": 10,
    "max_concurrency_per_instance": 1,
    "instance_count": 1,
    "error_threshold": -1,
    "mini_batch_error_threshold": -1,
    "max_retries": 3,
    "timeout": 30,
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "logging_level": "info",
}
# reference §23 (reference-yaml-job-parallel): parallel job keys. max_concurrency_per_instance
# takes the SDK's dump default (1), which is what `az ml` sends for a YAML without the key.
# append_row is on only when `task.append_row_to` is set; the file name is the parallel
# runtime's `parallel_run_step.txt` unless `--append_row_file_name` is in program_arguments.
PARALLEL_JOB_DEFAULTS: dict[str, Any] = {
    "mini_batch_size": 1,
    "max_concurrency_per_instance": 1,
    "instance_count": 1,
    "error_threshold": -1,
    "mini_batch_error_threshold": -1,
    "max_retries": 2,
    "timeout": 60,
    "output_action": "summary_only",
    "output_file_name": "parallel_run_step.txt",
    "logging_level": "INFO",
}


@dataclass
class ParallelSpec:
    """Everything the executor needs about the user's code and the run settings."""

    code_dir: Path
    entry_script: str
    program_arguments: list[str] = field(default_factory=list)
    mini_batch_size: int | str = 1
    max_concurrency_per_instance: int = 1
    instance_count: int = 1
    max_retries: int = 2
    timeout: float = 60
    error_threshold: int = -1
    mini_batch_error_threshold: int = -1
    output_action: str = "summary_only"
    output_file_name: str = "parallel_run_step.txt"
    logging_level: str = "INFO"
    environment_variables: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable

    @property
    def workers(self) -> int:
        return max(1, int(self.instance_count)) * max(1, int(self.max_concurrency_per_instance))

    @classmethod
    def for_batch_deployment(
        cls,
        settings: dict[str, Any],
        *,
        code_dir: Path,
        entry_script: str,
        environment_variables: dict[str, str] | None = None,
        python: str | None = None,
    ) -> ParallelSpec:
        """From a model batch deployment's settings (`settings:` of the modelBatchDeployment
        schema, or the flat keys of the older batchDeployment schema, already merged with
        invoke-time overrides such as `--mini-batch-size`)."""
        s = _merge(BATCH_DEPLOYMENT_DEFAULTS, settings)
        retry = settings.get("retry_settings") or {}
        env = {**(settings.get("environment_variables") or {}), **(environment_variables or {})}
        return cls(
            code_dir=Path(code_dir),
            entry_script=entry_script,
            mini_batch_size=s["mini_batch_size"],
            max_concurrency_per_instance=int(s["max_concurrency_per_instance"]),
            instance_count=int(s["instance_count"]),
            max_retries=int(
                _first(retry.get("max_retries"), BATCH_DEPLOYMENT_DEFAULTS["max_retries"])
            ),
            timeout=float(_first(retry.get("timeout"), BATCH_DEPLOYMENT_DEFAULTS["timeout"])),
            error_threshold=int(s["error_threshold"]),
            mini_batch_error_threshold=-1,
            output_action=str(s["output_action"]).lower(),
            output_file_name=_file_name(s["output_file_name"], "output_file_name"),
            logging_level=str(s["logging_level"]),
            environment_variables={k: str(v) for k, v in env.items()},
            python=python or sys.executable,
        )

    @classmethod
    def for_parallel_job(
        cls,
        job: dict[str, Any],
        *,
        code_dir: Path,
        program_arguments: str | list[str] | None = None,
        python: str | None = None,
    ) -> ParallelSpec:
        """From a parallel step/component as azure-ai-ml's `_to_dict()` gives it. The caller
        renders `${{inputs.X}}` in program_arguments first and passes the result."""
        s = _merge(PARALLEL_JOB_DEFAULTS, job)
        task = job.get("task") or {}
        retry = job.get("retry_settings") or {}
        resources = job.get("resources") or {}
        args = program_arguments
        if args is None:
            args = task.get("program_arguments") or task.get("args") or ""
        argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
        predefined = _predefined_args(argv)
        append = bool(task.get("append_row_to"))
        error_threshold = _first(job.get("error_threshold"), predefined.get("error_threshold"), -1)
        return cls(
            code_dir=Path(code_dir),
            entry_script=str(task.get("entry_script")),
            program_arguments=argv,
            mini_batch_size=s["mini_batch_size"],
            max_concurrency_per_instance=int(s["max_concurrency_per_instance"]),
            instance_count=int(_first(resources.get("instance_count"), 1)),
            max_retries=int(_first(retry.get("max_retries"), PARALLEL_JOB_DEFAULTS["max_retries"])),
            timeout=float(_first(retry.get("timeout"), PARALLEL_JOB_DEFAULTS["timeout"])),
            error_threshold=int(error_threshold),
            mini_batch_error_threshold=int(s["mini_batch_error_threshold"]),
            output_action="append_row" if append else "summary_only",
            output_file_name=_file_name(
                predefined.get("append_row_file_name") or PARALLEL_JOB_DEFAULTS["output_file_name"],
                "--append_row_file_name",
            ),
            logging_level=str(s["logging_level"]),
            environment_variables={
                k: str(v) for k, v in (job.get("environment_variables") or {}).items()
            },
            python=python or sys.executable,
        )


def _file_name(value: Any, key: str) -> str:
    """The results file's name: one plain file name, written inside the output folder (a
    name such as `../../x` would write outside the workspace)."""
    name = str(value)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidInput(f"{key}: {name!r} must be a plain file name (no folders)")
    return name


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {k: _first(given.get(k), v) for k, v in defaults.items()}


def _predefined_args(argv: list[str]) -> dict[str, str]:
    """The parallel runtime's own `--name value` arguments that amlocal honours."""
    known = {"error_threshold", "append_row_file_name"}
    out: dict[str, str] = {}
    for i, a in enumerate(argv):
        name, _, value = a.removeprefix("--").partition("=")
        if a.startswith("--") and name in known:
            out[name] = value if value else (argv[i + 1] if i + 1 < len(argv) else "")
    return out
