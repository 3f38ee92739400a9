"""`type: pipeline` steps: a pipeline component run as one step of its parent pipeline.

Azure ML runs a pipeline component node as a nested pipeline: each of its jobs becomes a
child job of the node (`job list --parent-job-name <node job>` shows them), its inputs are
the node's bound inputs, and its outputs are what its jobs bind to `${{parent.outputs.x}}`.
Here the nested jobs run through the same scheduler as a pipeline job's steps
(`amlocal.jobs.graph`), in the node's scope, on the same StepContext: command steps,
parallel steps and deeper pipeline steps behave, reuse and cancel exactly as at top level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs import plan as planlib
from amlocal.jobs.control import check_control
from amlocal.jobs.graph import NodeScope, run_graph
from amlocal.jobs.process import log_tail
from amlocal.jobs.records import child_record, resolve_step
from amlocal.jobs.status import Status, now_iso, succeeded
from amlocal.jobs.step_io import resolve_io

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult
    from amlocal.jobs.types import Spec, Step, Upstream
    from amlocal.workspace import Workspace


def _children(ws: Workspace, job: str, component: Spec, base: Path) -> dict[str, Step]:
    """The component's jobs as plan steps, with environments and registered components
    resolved (as submission does for top-level steps)."""
    steps: dict[str, Step] = {}
    for name, node in (component.get("jobs") or {}).items():
        where = f"{job}: jobs.{name}"
        step = planlib.make_step(name, node, base, where=where)
        resolve_step(ws, step, where)
        steps[name] = step
    if len(planlib.topo_order(steps)) != len(steps):
        raise InvalidInput(f"{job}: the pipeline component's step bindings form a cycle")
    check_control(steps, set(component.get("inputs") or {}), job)
    return steps


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run a pipeline component node; see amlocal.jobs.kinds for the contract."""
    ws, job = ctx.ws, call.job
    component = call.step.get("component") or {}
    io = resolve_io(
        ws, job, call.step, call.bound, call.targets, base=ctx.base, datastore=ctx.datastore
    )
    data: dict[str, Upstream] = {
        k: {"local_path": m["local_path"], "uri": m.get("path"), "type": m.get("type")}
        for k, m in io.input_meta.items()
        if isinstance(m, dict) and m.get("local_path")
    }
    values = {k: v for k, v in io.input_values.items() if k not in data}
    children = _children(ws, job, component, ctx.base)
    for name, child in children.items():
        record = child_record(
            f"{job}_{name}",
            parent=job,
            kind=child["kind"],
            display_name=child["display_name"],
            experiment_name=ctx.experiment_name,
            environment=child["env"]["label"],
            step_name=name,
        )
        ws.store.put("job", f"{job}_{name}", dict(record), parent=job)
    ctx.update_job(
        job,
        status=Status.RUNNING,
        start_time=now_iso(),
        inputs=io.input_meta,
        outputs=io.outputs,
        jobs={n: {"name": f"{job}_{n}", "type": c["kind"]} for n, c in children.items()},
    )
    outputs: dict[str, Any] = dict(io.outputs)
    scope = NodeScope(job, values, data, outputs, parent=call.scope)
    done, outs = run_graph(ctx, scope, children)
    if ctx.cancel.is_set() and ctx.user_canceled:
        status = Status.CANCELED
    else:
        ok = all(succeeded(s) for s in done.values())
        status = Status.COMPLETED if ok else Status.FAILED
    # The node's outputs are what its jobs wrote to ${{parent.outputs.x}}.
    node_outputs = dict(io.outputs)
    for name, child in children.items():
        for key, o in child["outputs"].items():
            if "parent_output" in o and key in outs.get(name, {}):
                node_outputs[o["parent_output"]] = outs[name][key]
    fields: dict[str, object] = {"status": status, "end_time": now_iso(), "outputs": node_outputs}
    if status != Status.COMPLETED:
        fields["error"] = failure_cause(ws, job, done)
    ctx.update_job(job, **fields)
    return status, node_outputs


def failure_cause(ws: Workspace, job: str, done: dict[str, str]) -> dict[str, Any]:
    """A pipeline node's error: its first failed nested job's cause, followed down deeper
    nodes to the leaf step, with that step's exit code and log tail, as a top-level failed
    step reports them."""
    for name, status in done.items():
        if status != Status.FAILED:
            continue
        child = ws.store.get("job", f"{job}_{name}") or {}
        error = child.get("error") or {}
        inner = error.get("failed_step")  # the child is itself a pipeline node
        path = f"{name}/{inner}" if inner else name
        reason = error.get("reason") or error.get("message") or "failed"
        cause: dict[str, Any] = {
            "message": f"nested job '{path}' failed: {reason}",
            "failed_step": path,
            "failed_job": error.get("failed_job") or child.get("name"),
            "reason": reason,
        }
        exit_code = error.get("exit_code", child.get("exit_code"))
        if exit_code is not None:
            cause["exit_code"] = exit_code
        tail = error.get("log_tail") or (log_tail(Path(child["_log"])) if child.get("_log") else "")
        if tail:
            cause["log_tail"] = tail
        return cause
    others = [n for n, s in done.items() if s != Status.COMPLETED]
    return {"message": f"nested job(s) not completed: {', '.join(others)}"}
