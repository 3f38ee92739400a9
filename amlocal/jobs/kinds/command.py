"""`type: command` steps and standalone command jobs: the command in a subprocess with the
code snapshot as working directory (`amlocal.jobs.process`), reused when an earlier job had the
same fingerprint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amlocal.jobs import artifacts, process, step_io
from amlocal.jobs.context import mark_running
from amlocal.jobs.status import Status, now_iso

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run one command job to a terminal status; see amlocal.jobs.kinds for the contract."""
    job, step = call.job, call.step
    env = step["env"]
    io = step_io.resolve_io(
        ctx.ws, job, step, call.bound, call.targets, base=ctx.base, datastore=ctx.datastore
    )
    r = step_io.resolve(ctx.ws, job, step, io, env, ctx.environment_identity(env))
    hit = ctx.reuse(
        step, r.fingerprint, job, {"inputs": r.io.input_meta, "environment": env["label"]}
    )
    if hit is not None:
        return Status.COMPLETED, hit["outputs"]
    ctx.warn_environment(env)
    run_id = ctx.mlflow.start(job)
    artifacts_in_run = artifacts.bind(ctx.ws, r, run_id)
    proc = process.StepProcess(ctx.ws, r, ctx.mlflow.env(job, run_id), ctx.python_bin_dir(env))
    submitted = None
    if ctx.standalone:  # keep what submit recorded (git commit, the firing schedule's name)
        submitted = (ctx.ws.store.get("job", job) or {}).get("properties")
    shown = {
        "inputs": r.io.input_meta,
        "outputs": r.io.outputs,
        "command": r.command,
        "environment": env["label"],
    }
    mark_running(ctx, job, run_id, proc.log_path, shown, properties=submitted)
    if ctx.cancel.is_set():
        ctx.update_job(job, status=Status.CANCELED, end_time=now_iso())
        return Status.CANCELED, {}
    ctx.track(job, proc)  # still tracked if the wait is interrupted: the runner stops it
    proc.start(ctx.warm)
    code = proc.wait(ctx.cancel)
    ctx.untrack(job)
    if proc.timed_out:
        status, error = Status.CANCELED, f"the job exceeded limits.timeout ({r.timeout:g} s)"
    elif ctx.cancel.is_set() and code != 0:
        status, error = Status.CANCELED, "canceled"
    elif code != 0:
        status, error = Status.FAILED, f"command exited with code {code}"
    else:
        status, error = Status.COMPLETED, ""
    if run_id:
        ctx.mlflow.end(run_id, status, None if artifacts_in_run else proc.cwd / "outputs")
    artifacts.collect(r.outputs, proc.cwd, proc.log_path)
    if status == Status.COMPLETED:
        ctx.remember(step, r.fingerprint, job)
    fields: dict[str, object] = {
        "status": status,
        "end_time": now_iso(),
        "exit_code": code,
        "outputs": r.io.outputs,
    }
    if error:
        fields["error"] = {"message": error, "log_tail": process.log_tail(proc.log_path)}
    ctx.update_job(job, **fields)
    return status, r.io.outputs
