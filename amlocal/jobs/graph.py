"""The DAG scheduler: runs a pipeline's jobs in dependency order, independent ones at once.

One scheduler for every depth: a pipeline job's steps run in the job's scope, a pipeline
component node's jobs in the node's scope (chained to its parent's), and the same rules hold
at each level:

- a job starts when every job it binds to has Completed; a job downstream of one that did
  not complete stays NotStarted;
- a job that does not complete cancels the rest unless `continue_on_step_failure` (the
  pipeline job's setting, default true) is on;
- on cancel, the running processes are stopped and jobs not yet started count as Canceled;
- at most `pool_size(n)` jobs of one graph run at once: one thread per job that can run,
  up to the CPU count (a thread mostly waits for its job's processes; a nested graph has a
  pool of its own, so a node never starves its own jobs).
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from amlocal.errors import InvalidInput
from amlocal.jobs.context import StepCall, StepContext, StepResult
from amlocal.jobs.expressions import EXPR
from amlocal.jobs.plan import dependencies, topo_order
from amlocal.jobs.status import Status, now_iso

if TYPE_CHECKING:
    import re

    from amlocal.jobs.context import Scope
    from amlocal.jobs.types import Binding, OutputDecl, Outputs, PipelineInput, Step, Upstream

# How long the scheduler waits for a job to end before it looks for a `job cancel` from
# another process (the store's CancelRequested).
CANCEL_POLL_S = 0.25


def pool_size(jobs: int) -> int:
    return max(1, min(os.cpu_count() or 1, jobs))


def run_graph(
    ctx: StepContext, scope: Scope, steps: dict[str, Step]
) -> tuple[dict[str, str], dict[str, Outputs]]:
    """Run `steps` to the end; each job's terminal status (or NotStarted) and outputs."""
    order = topo_order(steps)
    done: dict[str, str] = {}
    outputs: dict[str, Outputs] = {}
    running: dict[Future[StepResult], str] = {}
    with ThreadPoolExecutor(max_workers=pool_size(len(steps))) as pool:
        try:
            while True:
                for name in order:
                    if name in done or name in running.values():
                        continue
                    deps = dependencies(steps[name])
                    if ctx.cancel.is_set():
                        done[name] = Status.CANCELED
                    elif any(done.get(d) not in (None, Status.COMPLETED) for d in deps):
                        done[name] = Status.NOT_STARTED  # an upstream job did not complete
                    elif all(done.get(d) == Status.COMPLETED for d in deps):
                        fut = pool.submit(_run, ctx, scope, name, steps[name], outputs)
                        running[fut] = name
                if not running:
                    break
                finished, _ = wait(running, timeout=CANCEL_POLL_S, return_when=FIRST_COMPLETED)
                ctx.poll_cancel()
                for fut in finished:
                    name = running.pop(fut)
                    done[name], outputs[name] = _outcome(ctx, f"{scope.job}_{name}", fut)
                    if done[name] != Status.COMPLETED and not ctx.continue_on_failure:
                        ctx.cancel.set()
                if ctx.cancel.is_set():
                    ctx.stop_processes()
        except BaseException:
            ctx.cancel.set()  # before the pool waits for its threads
            ctx.stop_processes()
            raise
    return done, outputs


def _run(
    ctx: StepContext, scope: Scope, name: str, step: Step, outputs: dict[str, Outputs]
) -> StepResult:
    bound = bind(scope, step, outputs)
    targets = {k: scope.output_target(o) for k, o in step["outputs"].items()}
    return ctx.run_step(StepCall(f"{scope.job}_{name}", step, bound, targets, scope))


def _outcome(ctx: StepContext, job: str, fut: Future[StepResult]) -> StepResult:
    try:
        return fut.result()
    except Exception as exc:  # a resolution error: the job fails
        ctx.update_job(job, status=Status.FAILED, end_time=now_iso(), error={"message": str(exc)})
        return Status.FAILED, {}


def bind(scope: Scope, step: Step, outputs: dict[str, Outputs]) -> dict[str, Binding]:
    """A step's inputs evaluated in its parent's scope."""
    bound: dict[str, Binding] = {}
    for key, b in step["inputs"].items():
        if "step_output" in b:
            src, out = b["step_output"]
            bound[key] = {"upstream": cast("Upstream", outputs[src][out])}
        elif "parent_input" in b:
            value = scope.bind_input(key, b)
            if value is not None:
                bound[key] = value
        elif "template" in b:

            def sub(m: re.Match[str], key: str = key) -> str:
                expr = m.group(1)
                if expr.startswith("parent.inputs."):
                    return scope.template_value(expr.split(".", 2)[2])
                raise InvalidInput(f"unsupported expression in input '{key}': {expr}")

            bound[key] = {"literal": EXPR.sub(sub, b["template"])}
        else:
            bound[key] = b
    return bound


# -- scopes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineScope:
    """A pipeline job's scope: its inputs as planned (data by path, bound by reference) and
    its output declarations."""

    job: str
    inputs: dict[str, PipelineInput]
    outputs: dict[str, OutputDecl]
    parent: Scope | None = None

    def bind_input(self, key: str, binding: Binding) -> Binding | None:
        pin = self.inputs[binding["parent_input"]]
        if "literal" in pin:
            return None if pin["literal"] is None else {"literal": pin["literal"]}
        if pin.get("path"):
            mode = binding.get("mode") or pin.get("mode")
            return {"data": {"type": pin.get("type"), "path": pin.get("path"), "mode": mode}}
        return None

    def template_value(self, name: str) -> str:
        v = self.inputs[name]
        return str(v.get("literal", v.get("path")))

    def output_target(self, decl: OutputDecl) -> OutputDecl:
        if "parent_output" not in decl:
            return decl
        target: OutputDecl = {**(self.outputs.get(decl["parent_output"]) or {})}
        if decl.get("mode"):
            target["mode"] = decl["mode"]
        return target


@dataclass(frozen=True)
class NodeScope:
    """A pipeline component node's scope: the node's inputs as resolved when it started
    (`data`: local paths its jobs read as upstream outputs; `values`: literals) and its
    outputs, which its jobs write at their own default locations."""

    job: str
    values: dict[str, Any]
    data: dict[str, Upstream]
    outputs: dict[str, OutputDecl]
    parent: Scope | None = field(default=None)

    def bind_input(self, key: str, binding: Binding) -> Binding | None:
        name = binding["parent_input"]
        if name in self.data:
            return {"upstream": self.data[name]}
        if self.values.get(name) is not None:
            return {"literal": self.values[name]}
        return None

    def template_value(self, name: str) -> str:
        if name in self.data:
            return str(self.data[name]["local_path"])
        return str(self.values.get(name))

    def output_target(self, decl: OutputDecl) -> OutputDecl:
        if "parent_output" not in decl:
            return decl
        node_output = self.outputs.get(decl["parent_output"]) or {}
        return {"type": node_output.get("type", "uri_folder"), "mode": decl.get("mode")}
