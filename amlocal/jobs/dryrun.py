"""`job validate -f FILE`: everything `job create` checks before a job exists, and nothing
after: azure-ai-ml's load and `_validate()`, the plan (bindings, commands, code paths), the
cross-file binding checks, and the registered components and environments it names. No job
record, no process, no MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal import assets, crossfile, yamlsafe
from amlocal.errors import AmlocalError, InvalidInput
from amlocal.workspace import Workspace


def validate_job(ws: Workspace, path: Path, overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"result": "Succeeded"}` (azure-ai-ml's ValidationResult shape), else InvalidInput
    naming the file and key."""

    from amlocal.jobs import plan as planlib
    from amlocal.jobs.records import step_environment

    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    job_plan = planlib.load_plan(ws, path, overrides)
    raw = yamlsafe.load_file(path) or {}
    _check_mltables(path, raw)
    if job_plan["kind"] == "pipeline" and isinstance(raw, dict):
        doc = crossfile.Doc(path, "job", "pipelineJob", raw)
        errors = [p for p in crossfile.check_pipeline(doc) if p.severity == "error"]
        if errors:
            raise InvalidInput("\n".join(p.render(Path.cwd()) for p in errors))
    steps = job_plan["steps"] if job_plan["kind"] == "pipeline" else {"": job_plan["step"]}
    for name, step in steps.items():
        where = f"{path}: jobs.{name}" if name else str(path)
        refs: list[tuple[str, object, str]] = [
            ("component", step.get("component_ref"), "component")
        ]
        refs.append(("environment", step_environment(step), "environment"))
        for key, ref, kind in refs:
            if _registered(ref):
                try:
                    assets.get(ws, kind, str(ref))
                except AmlocalError as exc:
                    shown = f"{where}.{key}" if name else f"{where}: {key}"
                    raise InvalidInput(f"{shown}: {exc}") from None
    return {"result": "Succeeded"}


def _check_mltables(path: Path, raw: Any) -> None:
    """The MLTable folders the job names: found, paths resolving, transformations known."""
    from amlocal.assets import mltable

    problems = [
        f"{file}: {key}: {msg}" if key else f"{file}: {msg}"
        for file, key, msg in mltable.check_yaml(path, raw)
    ]
    if problems:
        raise InvalidInput("\n".join(problems))


def _registered(ref: Any) -> bool:
    """A workspace asset reference (`azureml:name:1`, `azureml:name@latest`); registry URIs
    and Azure's curated `AzureML-*` environments are resolved when the job runs."""
    return (
        isinstance(ref, str)
        and ref.startswith("azureml:")
        and "://" not in ref
        and not ref.removeprefix("azureml:").startswith("AzureML-")
    )
