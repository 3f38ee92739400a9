"""`type: pipeline` steps: a pipeline component run as one step of its parent pipeline.

Azure ML runs a pipeline component node as a nested pipeline: each of its jobs becomes a
child job of the node (`job list --parent-job-name <node job>` shows them), its inputs are
the node's bound inputs, and its outputs are what its jobs bind to `${{parent.outputs.x}}`.
Here the nested jobs run on the parent's Execution (so command steps, parallel steps and
deeper pipeline steps behave, reuse and cancel exactly as at top level), scheduled in
dependency order with independent jobs in parallel.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from amlocal import assets
from amlocal.errors import AmlocalError, InvalidInput
from amlocal.jobs import environments
from amlocal.jobs import plan as planlib
from amlocal.jobs.expressions import EXPR
from amlocal.jobs.pipeline import step_environment
from amlocal.jobs.run import resolve_io


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _children(
    execution: Any, job: str, component: dict[str, Any], base: Path
) -> dict[str, dict[str, Any]]:
    """The component's jobs as plan steps, with environments and registered components
    resolved (as submission does for top-level steps)."""
    steps: dict[str, dict[str, Any]] = {}
    for name, node in (component.get("jobs") or {}).items():
        where = f"{job}: jobs.{name}"
        step = planlib._step(name, node, base, where=where)
        if step.get("component_ref"):
            try:
                step["component"] = assets.public(
                    assets.get(execution.ws, "component", step["component_ref"])
                )
            except AmlocalError as exc:
                raise InvalidInput(f"{where}.component: {exc}") from None
        step["env"] = environments.resolve(execution.ws, step_environment(step), where)
        steps[name] = step
    order = planlib.topo_order(steps)
    if len(order) != len(steps):
        raise InvalidInput(f"{job}: the pipeline component's step bindings form a cycle")
    return steps


def _bind(
    step: dict[str, Any],
    values: dict[str, Any],
    data: dict[str, dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A nested job's inputs in the component's context: `values` are its literal inputs,
    `data` its data inputs ({local_path, uri, type})."""
    bound: dict[str, Any] = {}
    for key, b in step["inputs"].items():
        if "step_output" in b:
            src, out = b["step_output"]
            bound[key] = {"upstream": outputs[src][out]}
        elif "parent_input" in b:
            name = b["parent_input"]
            if name in data:
                bound[key] = {"upstream": data[name]}
            elif values.get(name) is not None:
                bound[key] = {"literal": values[name]}
        elif "template" in b:

            def sub(m: Any, key: str = key) -> str:
                expr = m.group(1)
                if expr.startswith("parent.inputs."):
                    name = expr.split(".", 2)[2]
                    v = data[name]["local_path"] if name in data else values.get(name)
                    return str(v)
                raise InvalidInput(f"unsupported expression in input '{key}': {expr}")

            bound[key] = {"literal": EXPR.sub(sub, b["template"])}
        else:
            bound[key] = b
    return bound


def run(
    execution: Any,
    job: str,
    step: dict[str, Any],
    bound: dict[str, Any],
    targets: dict[str, dict[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """Run a pipeline component node; see amlocal.jobs.kinds for the contract."""
    ws = execution.ws
    component = step.get("component") or {}
    io = resolve_io(
        ws, job, step, bound, targets, base=execution.base, datastore=execution.datastore
    )
    data = {
        k: {"local_path": m["local_path"], "uri": m.get("path"), "type": m.get("type")}
        for k, m in io.input_meta.items()
        if isinstance(m, dict) and m.get("local_path")
    }
    values = {k: v for k, v in io.input_values.items() if k not in data}
    children = _children(execution, job, component, execution.base)
    for name, child in children.items():
        ws.store.put(
            "job",
            f"{job}_{name}",
            {
                "name": f"{job}_{name}",
                "display_name": child["display_name"],
                "type": child["kind"],
                "status": "NotStarted",
                "parent_job_name": job,
                "step_name": name,
                "experiment_name": execution.plan["experiment_name"],
                "properties": {},
                "inputs": {},
                "outputs": {},
                "environment": child["env"]["label"],
            },
            parent=job,
        )
    execution.update_job(
        job,
        status="Running",
        start_time=_now(),
        inputs=io.input_meta,
        outputs=io.outputs,
        jobs={n: {"name": f"{job}_{n}", "type": c["kind"]} for n, c in children.items()},
    )
    done, outs = _schedule(execution, job, children, values, data, io.outputs)
    if execution.cancel.is_set() and execution.user_canceled:
        status = "Canceled"
    else:
        status = "Completed" if all(s == "Completed" for s in done.values()) else "Failed"
    # The node's outputs are what its jobs wrote to ${{parent.outputs.x}}.
    node_outputs = dict(io.outputs)
    for name, child in children.items():
        for key, o in child["outputs"].items():
            if "parent_output" in o and key in outs.get(name, {}):
                node_outputs[o["parent_output"]] = outs[name][key]
    fields: dict[str, Any] = {"status": status, "end_time": _now(), "outputs": node_outputs}
    if status != "Completed":
        fields["error"] = failure_cause(ws, job, done)
    execution.update_job(job, **fields)
    return status, node_outputs


def _schedule(
    execution: Any,
    job: str,
    children: dict[str, dict[str, Any]],
    values: dict[str, Any],
    data: dict[str, dict[str, Any]],
    node_outputs: dict[str, dict[str, Any]],
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Run the nested jobs in dependency order, independent ones at once."""
    order = planlib.topo_order(children)
    done: dict[str, str] = {}
    outs: dict[str, dict[str, Any]] = {}
    running: dict[str, Future[tuple[str, dict[str, Any]]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(2, len(children)))) as pool:
        while True:
            for name, fut in list(running.items()):
                if not fut.done():
                    continue
                del running[name]
                try:
                    status, o = fut.result()
                except Exception as exc:  # a resolution error fails the nested job
                    status, o = "Failed", {}
                    execution.update_job(
                        f"{job}_{name}",
                        status="Failed",
                        end_time=_now(),
                        error={"message": str(exc)},
                    )
                done[name], outs[name] = status, o
                if status != "Completed" and not execution.continue_on_failure:
                    execution.cancel.set()
            for name in order:
                if name in done or name in running:
                    continue
                deps = planlib.dependencies(children[name])
                if execution.cancel.is_set():
                    done[name] = "Canceled"
                elif any(done.get(d) not in (None, "Completed") for d in deps):
                    done[name] = "NotStarted"  # an upstream job failed
                elif all(done.get(d) == "Completed" for d in deps):
                    child = children[name]
                    bound = _bind(child, values, data, outs)
                    targets = {k: _target(o, node_outputs) for k, o in child["outputs"].items()}
                    running[name] = pool.submit(
                        execution._run_step, f"{job}_{name}", child, bound, targets
                    )
            if not running and len(done) == len(children):
                break
            time.sleep(0.05)
    return done, outs


def _target(o: dict[str, Any], node_outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A nested output bound to the node's output takes its type; the nested job writes it
    at its own default location, which then stands for the node's output."""
    if "parent_output" in o:
        decl = node_outputs.get(o["parent_output"]) or {}
        return {"type": decl.get("type", "uri_folder"), "mode": o.get("mode")}
    return o


def failure_cause(ws: Any, job: str, done: dict[str, str]) -> dict[str, Any]:
    """A pipeline node's error: its first failed nested job's cause, followed down deeper
    nodes to the leaf step, with that step's exit code and log tail, as a top-level failed
    step reports them."""
    from amlocal.jobs.run import log_tail

    for name, status in done.items():
        if status != "Failed":
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
    others = [n for n, s in done.items() if s != "Completed"]
    return {"message": f"nested job(s) not completed: {', '.join(others)}"}
