"""`type: parallel` steps (and batch-endpoint invocations) on the mini-batch executor.

A parallel node of a pipeline and a model batch deployment run on the same executor
(`amlocal.jobs.kinds.parallel`); they differ only in where their settings come from and in their
defaults. A pipeline node's `component` holds azure-ai-ml's `_to_dict()` fields (task,
input_data, mini_batch_size, retry_settings, ...), and node-level keys override them. An
invocation built by `amlocal.endpoints.verbs.batch_invoke` carries a `batch` block instead: the
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
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs import artifacts, environments, reuse
from amlocal.jobs import expressions as ex
from amlocal.jobs.context import mark_running
from amlocal.jobs.kinds import parallel as P
from amlocal.jobs.status import Status
from amlocal.jobs.status import now_iso as _now
from amlocal.jobs.step_io import IO, LOG_NAME, resolve_io

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult
    from amlocal.jobs.types import Outputs, Step
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


def effective_component(step: Step) -> dict[str, Any]:
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


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run one parallel step to a terminal status; see amlocal.jobs.kinds for the contract."""
    ws, job, step = ctx.ws, call.job, call.step
    where = f"step '{step['name']}'"
    component = effective_component(step)
    batch = step.get("batch")  # set for batch-endpoint invocations
    io = resolve_io(
        ws,
        job,
        step,
        call.bound,
        call.targets,
        base=ctx.base,
        datastore=ctx.datastore,
        component=component,
        digest_data=not batch,  # batch invocations are never reused: don't hash their input
    )
    data_name = _input_name(component.get("input_data"), where)
    if data_name not in io.input_values or io.input_values[data_name] is None:
        raise InvalidInput(f"{where}: input_data names input '{data_name}', which has no value")
    task = component.get("task") or {}
    args = ex.render(
        str(task.get("program_arguments") or ""),
        io.input_values,
        {k: v["local_path"] for k, v in io.outputs.items()},
        where=f"{where}: task.program_arguments",
    )
    if batch:
        code, out_name = Path(batch["code_dir"]), batch.get("output_name", "score")
    else:
        code, out_name = _task_code(ctx.base, task, io, where)
    env = step["env"]
    key = reuse.fingerprint(
        component,
        snapshot_digest(code, ws.store),
        ctx.environment_identity(env),
        io.input_identity,
        io.output_identity,
        {
            "program_arguments": args,
            "batch": {k: v for k, v in (batch or {}).items() if k != "code_dir"},
            "environment_variables": step.get("environment_variables") or {},
        },
    )
    shown = {"inputs": io.input_meta, "outputs": io.outputs, "environment": env["label"]}
    hit = ctx.reuse(step, key, job, shown)
    if hit is not None:
        return Status.COMPLETED, hit["outputs"]
    run_id = None if batch else ctx.mlflow.start(job)
    if not batch:  # a parallel job's default output, as a command job's
        artifacts.locate(ws, job, io.outputs, run_id)
    ctx.warn_environment(env)
    # A batch deployment's interpreter was chosen (and built) at its create.
    python = (batch or {}).get("python") or str(ctx.python_bin_dir(env) / "python")
    env_vars = ctx.mlflow.env(job, run_id) if run_id else {"AZUREML_RUN_ID": job}
    environments.route_tracking(ws, Path(python).parent, "", code, env_vars)
    if batch:  # deployment create already snapshotted the code; it never changes
        spec = _batch_spec(batch, code, env_vars, python)
    else:
        work = ws.job_dir(job) / "wd"
        shutil.rmtree(work, ignore_errors=True)
        materialize(code, work)
        spec = _job_spec(step, component, work, args, env_vars, python)
    data_path = Path(str(io.input_values[data_name]))
    kind = "batch scoring" if batch else "parallel step"
    run = _Run(ctx, call, io.outputs, out_name, run_id, shown)
    status = run.execute(spec, data_path, kind)
    if not batch:
        artifacts.collect(io.outputs, spec.code_dir, run.log_path, logs=run.log_dir)
    if status == Status.COMPLETED:
        ctx.remember(step, key, job)
    return status, (io.outputs if run.ran else {})


def _task_code(base: Path, task: dict[str, Any], io: IO, where: str) -> tuple[Path, str | None]:
    """A parallel node's `task.code` folder and the output `append_row_to` names."""
    if not task.get("code") or str(task["code"]).startswith(("azureml:", "http")):
        raise InvalidInput(f"{where}: task.code must be a local folder")
    code = Path(str(task["code"]))
    if not code.is_absolute():
        code = (base / code).resolve()
    if not code.is_dir():
        raise InvalidInput(f"{where}: task.code {code} is not a folder")
    out_name = _output_name(task.get("append_row_to"))
    if task.get("append_row_to") and out_name not in io.outputs:
        raise InvalidInput(
            f"{where}: task.append_row_to must be ${{{{outputs.<name>}}}} of a declared "
            f"output, got {task.get('append_row_to')!r}"
        )
    return code, out_name


def _batch_spec(
    batch: dict[str, Any], code: Path, env_vars: dict[str, str], python: str
) -> P.ParallelSpec:
    """A model batch deployment's run: its settings, model folder and scoring script."""
    env_vars["AZUREML_MODEL_DIR"] = batch["model_dir"]
    env_vars.update(batch.get("environment_variables") or {})
    spec = P.ParallelSpec.for_batch_deployment(
        batch["settings"],
        code_dir=code,
        entry_script=batch["entry_script"],
        environment_variables=env_vars,
        python=python,
    )
    spec.program_arguments = batch.get("program_arguments") or []
    return spec


def _job_spec(
    step: Step,
    component: dict[str, Any],
    work: Path,
    args: str,
    env_vars: dict[str, str],
    python: str,
) -> P.ParallelSpec:
    """A parallel node's run: the component's settings, the node's variables on top."""
    spec = P.ParallelSpec.for_parallel_job(
        component, code_dir=work, program_arguments=args, python=python
    )
    spec.environment_variables = {**env_vars, **spec.environment_variables}
    spec.environment_variables.update(
        {str(k): str(v) for k, v in (step.get("environment_variables") or {}).items()}
    )
    return spec


class _Run:
    """The execution tail both kinds of parallel run share: the job record, the log, the
    executor, the MLflow run's end."""

    def __init__(
        self,
        ctx: StepContext,
        call: StepCall,
        outputs: Outputs,
        out_name: str | None,
        run_id: str | None,
        shown: dict[str, object],
    ) -> None:
        self.ctx, self.job = ctx, call.job
        self.outputs, self.run_id, self.shown = outputs, run_id, shown
        jd = ctx.ws.job_dir(call.job)
        self.log_path, self.log_dir = jd / LOG_NAME, jd / "logs"
        self.out_dir = Path(outputs[out_name]["local_path"]) if out_name in outputs else jd / "out"
        self.ran = True  # False: the executor refused the input (InvalidInput)

    def _progress(self, p: P.Progress) -> None:
        """The executor's last report, for `--stream`'s progress line (amlocal.jobs.progress);
        the executor reports at most once a second, and at the end."""
        keys = ("total", "done", "failed", "rows", "rows_per_second")
        self.ctx.update_job(self.job, _progress={k: getattr(p, k) for k in keys})

    def execute(self, spec: P.ParallelSpec, data_path: Path, kind: str) -> str:
        ctx, job = self.ctx, self.job
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for o in self.outputs.values():
            Path(o["local_path"]).mkdir(parents=True, exist_ok=True)
        props = mark_running(ctx, job, self.run_id, self.log_path, self.shown)
        if ctx.cancel.is_set():
            ctx.update_job(job, status=Status.CANCELED, end_time=_now())
            self.ran = False
            return Status.CANCELED
        with self.log_path.open("a", buffering=1) as log:

            def write(line: str) -> None:
                log.write(f"{dt.datetime.now():%Y-%m-%d %H:%M:%S} {line}\n")

            write(
                f"{kind} {job}: input {data_path}, entry script {spec.entry_script}, "
                f"mini_batch_size {spec.mini_batch_size}, output_action {spec.output_action}"
            )
            try:
                batches = P.plan(data_path, spec.mini_batch_size)
                summary = P.execute(
                    spec,
                    batches,
                    self.out_dir,
                    self.log_dir,
                    log=write,
                    on_progress=self._progress,
                    cancel=ctx.cancel,
                )
            except InvalidInput as exc:
                write(f"ERROR: {exc}")
                ctx.update_job(
                    job, status=Status.FAILED, end_time=_now(), error={"message": str(exc)}
                )
                self.ran = False
                if self.run_id:
                    ctx.mlflow.end(self.run_id, Status.FAILED)
                return Status.FAILED
        fields: dict[str, object] = {
            "status": summary.status,
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
        ctx.update_job(job, **fields)
        if self.run_id:
            ctx.mlflow.end(self.run_id, summary.status)
        return summary.status
