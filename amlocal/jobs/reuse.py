"""Azure ML's reuse rule: a step is reused when its component is deterministic, the pipeline
does not force a rerun, and the component spec, code snapshot, environment, input data
content, literal inputs, output settings and run settings all equal an earlier successful
step's. The earlier step's outputs, logs and MLflow run then stand for this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from amlocal.hashing import text_digest
from amlocal.jobs.status import Status, now_iso

if TYPE_CHECKING:
    from amlocal.jobs.types import JobRecord, Step
    from amlocal.store import Store

# Keys of a component that change what it computes (name/version/display text do not).
_SPEC_KEYS = (
    "type",
    "command",
    "inputs",
    "outputs",
    "distribution",
    "resources",
    "environment_variables",
    "task",
    "trial",
    "search_space",
    "objective",
    "sampling_algorithm",
    "limits",
    "early_termination",
    "input_data",
    "mini_batch_size",
    "retry_settings",
    "mini_batch_error_threshold",
    "max_concurrency_per_instance",
    "logging_level",
    "error_threshold",
)


def fingerprint(
    component: dict[str, Any],
    code_digest: str | None,
    environment_identity: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    run_settings: dict[str, Any],
) -> str:
    """The reuse key. `inputs` holds literal values and data content digests; `outputs` the
    output settings the user chose (type, mode, explicit path), never generated paths."""
    spec = {k: component.get(k) for k in _SPEC_KEYS if component.get(k) is not None}
    doc = {
        "spec": spec,
        "code": code_digest,
        "environment": environment_identity,
        "inputs": inputs,
        "outputs": outputs,
        "run": run_settings,
    }
    return text_digest(json.dumps(doc, sort_keys=True, default=str))


def enabled(step: Step, *, force_rerun: bool, pipeline: bool = True) -> bool:
    """Reuse applies to the steps of a pipeline (Azure reuses pipeline steps only) whose
    component is deterministic (the default), unless the pipeline forces a rerun."""
    deterministic = (step.get("component") or {}).get("is_deterministic", True) is not False
    return pipeline and deterministic and not force_rerun


def reusable(
    store: Store, step: Step, key: str, job: str, *, force_rerun: bool, pipeline: bool = True
) -> JobRecord | None:
    """The earlier job that stands for `job` (fingerprint `key`), or None: run it."""
    if not enabled(step, force_rerun=force_rerun, pipeline=pipeline):
        return None
    hit = lookup(store, key)
    if hit is None or hit.get("name") == job:
        return None
    return hit


def reused_fields(hit: JobRecord) -> dict[str, object]:
    """What a reused job's record shows: completed at once, with the earlier job's outputs,
    log and MLflow run (`azureml.isreused`, `azureml.reusedrunid` as Azure ML sets them)."""
    props = {"azureml.isreused": "true", "azureml.reusedrunid": hit.get("name", "")}
    if hit.get("properties", {}).get("mlflow.runId"):
        props["mlflow.runId"] = hit["properties"]["mlflow.runId"]
    now = now_iso()
    fields: dict[str, object] = {
        "status": Status.COMPLETED,
        "properties": props,
        "outputs": hit.get("outputs"),
        "start_time": now,
        "end_time": now,
        "_log": hit.get("_log"),
    }
    if "command" in hit:
        fields["command"] = hit["command"]
    return fields


def lookup(store: Store, key: str) -> JobRecord | None:
    """The earlier successful step job with this fingerprint, if its outputs still exist."""
    name = store.cache_get(f"reuse:{key}")
    if not name:
        return None
    record = store.get("job", name)
    if not record or record.get("status") != Status.COMPLETED:
        return None
    for out in (record.get("outputs") or {}).values():
        p = out.get("local_path")
        if p and not Path(p).exists():  # outputs deleted since: run again
            return None
    return cast("JobRecord", record)


def remember(store: Store, key: str, job_name: str) -> None:
    store.cache_put(f"reuse:{key}", job_name)
