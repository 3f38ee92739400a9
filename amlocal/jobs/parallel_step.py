"""`type: parallel` steps (and batch-endpoint invocations) on the mini-batch executor.

A parallel node of a pipeline and a model batch deployment run on the same executor
(`amlocal.jobs.parallel`); they differ only in where their settings come from and in their
defaults. A pipeline node's `component` holds azure-ai-ml's `_to_dict()` fields (task,
input_data, mini_batch_size, retry_settings, ...), and node-level keys override them. An
invocation built by `amlocal.endpoints.batch` carries a `batch` block instead: the
deployment's settings, its code snapshot and model folder, resolved at deployment create so
that nothing here needs azure-ai-ml or MLflow.

Logs: `user_logs/std_log.txt` (the job's `_log`: `job stream` and `--stream` tail it) gets
the executor's lines, progress included; the executor's own files go to the job's `logs/`
(job_progress_overview.txt, job_error.txt, job_result.txt, user/...), as in Azure.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.jobs import environments, reuse
from amlocal.jobs import expressions as ex
from amlocal.jobs import parallel as P
from amlocal.jobs.run import LOG_NAME, resolve_io
from amlocal.snapshot import materialize, snapshot_digest

# Keys of a parallel node that may override its component's (azure-ai-ml dumps both).
NODE_KEYS = (
    "input_data",
    "mini_batch_size",
    "max_concurrency_per_instance",
    "retry_settings",
    "error_threshold",
    "mini_batch_error_threshold",
    "logging_level",
    "resources",
    "environment_variables",
    "task",
    "partition_keys",
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def effective_component(step: dict[str, Any]) -> dict[str, Any]:
    """The component with the node's own settings on top (a node may set mini_batch_size,
    retry_settings... over a parallel component loaded from a file)."""
    component = dict(step.get("component") or {})
    spec = step.get("spec") or {}
    for key in NODE_KEYS:
        if spec.get(key) is not None:
            if isinstance(spec[key], dict) and isinstance(component.get(key), dict):
                component[key] = {**component[key], **spec[key]}
            else:
                component[key] = spec[key]
    return component


def _input_name(expr: Any, where: str) -> str:
    """`${{inputs.data}}` -> "data"."""
    m = ex.EXPR.fullmatch(str(expr or "").strip())
    if not m or not m.group(1).startswith("inputs."):
        raise InvalidInput(f"{where}: input_data must be ${{{{inputs.<name>}}}}, got {expr!r}")
    return m.group(1).split(".", 1)[1]


def _output_name(expr: Any) -> str | None:
    m = ex.EXPR.fullmatch(str(expr or "").strip())
    if not m or not m.group(1).startswith("outputs."):
        return None
    return m.group(1).split(".", 1)[1]


def run(
    execution: Any,
    job: str,
    step: dict[str, Any],
    bound: dict[str, Any],
    targets: dict[str, dict[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """Run one parallel step to a terminal status; see amlocal.jobs.kinds for the contract."""
    ws = execution.ws
    where = f"step '{step['name']}'"
    component = effective_component(step)
    batch = step.get("batch")  # set for batch-endpoint invocations
    io = resolve_io(
        ws,
        job,
        step,
        bound,
        targets,
        base=execution.base,
        datastore=execution.datastore,
        component=component,
        digest_data=not batch,  # batch invocations are never reused: don't hash their input
    )
    data_name = _input_name(component.get("input_data"), where)
    if data_name not in io.input_values or io.input_values[data_name] is None:
        raise InvalidInput(f"{where}: input_data names input '{data_name}', which has no value")
    data_path = Path(str(io.input_values[data_name]))
    task = component.get("task") or {}
    outputs_local = {k: v["local_path"] for k, v in io.outputs.items()}
    args = ex.render(
        str(task.get("program_arguments") or ""),
        io.input_values,
        outputs_local,
        where=f"{where}: task.program_arguments",
    )
    if batch:
        code = Path(batch["code_dir"])
        out_name = batch.get("output_name", "score")
    else:
        if not task.get("code") or str(task["code"]).startswith(("azureml:", "http")):
            raise InvalidInput(f"{where}: task.code must be a local folder")
        code = Path(str(task["code"]))
        if not code.is_absolute():
            code = (execution.base / code).resolve()
        if not code.is_dir():
            raise InvalidInput(f"{where}: task.code {code} is not a folder")
        out_name = _output_name(task.get("append_row_to"))
        if task.get("append_row_to") and out_name not in io.outputs:
            raise InvalidInput(
                f"{where}: task.append_row_to must be ${{{{outputs.<name>}}}} of a declared "
                f"output, got {task.get('append_row_to')!r}"
            )
    env = step["env"]
    code_digest = snapshot_digest(code, ws.store)
    key = reuse.fingerprint(
        component,
        code_digest,
        env["identity"],
        io.input_identity,
        io.output_identity,
        {
            "program_arguments": args,
            "batch": {k: v for k, v in (batch or {}).items() if k != "code_dir"},
            "environment_variables": step.get("environment_variables") or {},
        },
    )
    shown = {"inputs": io.input_meta, "outputs": io.outputs, "environment": env["label"]}
    hit = execution.find_reusable(step, key, job)
    if hit is not None:
        execution.update_job(job, **shown)
        return "Completed", hit["outputs"]

    jd = ws.job_dir(job)
    log_path = jd / LOG_NAME
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_dir = jd / "logs"
    if batch:
        work = code  # deployment create already snapshotted it; it never changes
    else:
        work = jd / "wd"
        shutil.rmtree(work, ignore_errors=True)
        materialize(code, work)
    run_id = None if batch else execution.mlflow_run(job)
    execution.warn_environment(env)
    bin_dir = environments.python_bin_dir(ws, env, bool(execution.record.get("_isolate")))
    env_vars = execution.step_env_vars(job, run_id) if run_id else {"AZUREML_RUN_ID": job}
    if batch:
        env_vars["AZUREML_MODEL_DIR"] = batch["model_dir"]
        env_vars.update(batch.get("environment_variables") or {})
        spec = P.ParallelSpec.for_batch_deployment(
            batch["settings"],
            code_dir=work,
            entry_script=batch["entry_script"],
            environment_variables=env_vars,
            python=str(bin_dir / "python"),
        )
        spec.program_arguments = batch.get("program_arguments") or []
    else:
        spec = P.ParallelSpec.for_parallel_job(
            component, code_dir=work, program_arguments=args, python=str(bin_dir / "python")
        )
        spec.environment_variables = {**env_vars, **spec.environment_variables}
        spec.environment_variables.update(
            {str(k): str(v) for k, v in (step.get("environment_variables") or {}).items()}
        )
    out_dir = Path(io.outputs[out_name]["local_path"]) if out_name in io.outputs else jd / "out"
    for o in io.outputs.values():
        Path(o["local_path"]).mkdir(parents=True, exist_ok=True)
    props = {"mlflow.runId": run_id} if run_id else {}
    execution.update_job(
        job, status="Running", start_time=_now(), properties=props, _log=str(log_path), **shown
    )
    if execution.cancel.is_set():
        execution.update_job(job, status="Canceled", end_time=_now())
        return "Canceled", {}
    with log_path.open("a", buffering=1) as log:

        def write(line: str) -> None:
            log.write(f"{dt.datetime.now():%Y-%m-%d %H:%M:%S} {line}\n")

        write(
            f"{'batch scoring' if batch else 'parallel step'} {job}: input {data_path}, "
            f"entry script {spec.entry_script}, mini_batch_size {spec.mini_batch_size}, "
            f"output_action {spec.output_action}"
        )
        try:
            batches = P.plan(data_path, spec.mini_batch_size)
            summary = P.execute(spec, batches, out_dir, log_dir, log=write, cancel=execution.cancel)
        except InvalidInput as exc:
            write(f"ERROR: {exc}")
            execution.update_job(job, status="Failed", end_time=_now(), error={"message": str(exc)})
            if run_id:
                execution.end_mlflow_run(run_id, "Failed")
            return "Failed", {}
    status = summary.status
    fields: dict[str, Any] = {
        "status": status,
        "end_time": _now(),
        "properties": {
            **props,
            "azureml.parallel.mini_batches": str(summary.mini_batches),
            "azureml.parallel.mini_batches_failed": str(summary.mini_batches_failed),
            "azureml.parallel.items_failed": str(summary.items_failed),
            "azureml.parallel.rows": str(summary.rows),
        },
    }
    if summary.error:
        fields["error"] = {"message": summary.error}
    execution.update_job(job, **fields)
    if run_id:
        execution.end_mlflow_run(run_id, status)
    if status == "Completed":
        execution.remember(step, key, job)
    return status, io.outputs
