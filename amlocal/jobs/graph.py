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
  pool of its own, so a node never starves its own jobs; a do_while's rounds, one graph
  each, share the one thread their node keeps for the loop).

Control flow (`amlocal.jobs.control`) changes only who starts a step: an if_else's blocks
and a loop's body are owned by their node, which runs them through this same scheduler (a
subset of the graph, or one graph per round in a `RoundScope`) and reports their outcome; a
step that binds to a Skipped step is Skipped; `run_pipeline` runs `settings.on_init` first
and `settings.on_finalize` last.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from amlocal.errors import InvalidInput
from amlocal.jobs.context import Siblings, StepCall, StepContext, StepResult
from amlocal.jobs.control import dependencies, order_of, owned, owners, waits
from amlocal.jobs.control_io import is_primitive, read_value
from amlocal.jobs.expressions import EXPR
from amlocal.jobs.status import Status, now_iso, succeeded

if TYPE_CHECKING:
    import re
    from collections.abc import Mapping

    from amlocal.jobs.context import Scope
    from amlocal.jobs.types import Binding, OutputDecl, Outputs, PipelineInput, Step, Upstream

# How long the scheduler waits for a job to end before it looks for a `job cancel` from
# another process (the store's CancelRequested).
CANCEL_POLL_S = 0.25


def pool_size(jobs: int) -> int:
    return max(1, min(os.cpu_count() or 1, jobs))


def run_graph(
    ctx: StepContext,
    scope: Scope,
    steps: Mapping[str, Step],
    *,
    upstream: Mapping[str, Outputs] | None = None,
    limit: int | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[dict[str, str], dict[str, Outputs]]:
    """Run `steps` to the end; each job's terminal status (or NotStarted) and outputs.

    `upstream`: outputs of completed steps outside `steps` that these bind to (a control
    node running its blocks or body); `limit`: at most this many jobs at once; `pool`: the
    threads to run them on, kept open for the caller's next graph (a do_while's rounds),
    else a pool of this graph's own."""
    own = owners(steps)
    waiting = waits(steps)
    reads = {n: dependencies(s) & steps.keys() for n, s in steps.items()}
    order = order_of(waiting)
    done: dict[str, str] = {}
    outputs: dict[str, Outputs] = dict(upstream or {})
    running: dict[Future[StepResult], tuple[str, Siblings | None]] = {}

    def settle(name: str, status: str) -> None:
        """A job that will not start, and the steps it owns with it."""
        done[name] = status
        if status == Status.SKIPPED:
            ctx.update_job(f"{scope.job}_{name}", status=status, end_time=now_iso())
        for o in owned(steps[name]):
            if o in steps and o not in done:
                settle(o, status)

    with ExitStack() as stack:
        if pool is None:
            workers = pool_size(min(len(steps), limit or len(steps)))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))
        try:
            while True:
                busy = {n for n, _ in running.values()}
                for name in order:
                    if name in done or name in busy or name in own:
                        continue  # an owned step is run, or settled, by its owner
                    deps = waiting[name]
                    if ctx.cancel.is_set():
                        settle(name, Status.CANCELED)
                    elif any(
                        done.get(d) not in (None, Status.COMPLETED, Status.SKIPPED) for d in deps
                    ):
                        settle(name, Status.NOT_STARTED)  # an upstream job did not complete
                    elif all(d in done for d in deps) and any(
                        done.get(d) == Status.SKIPPED for d in deps | reads[name]
                    ):
                        settle(name, Status.SKIPPED)  # it reads a branch that did not run
                    elif all(done.get(d) == Status.COMPLETED for d in deps):
                        if limit is not None and len(running) >= limit:
                            continue
                        graph = Siblings(steps, outputs) if "control" in steps[name] else None
                        fut = pool.submit(_run, ctx, scope, name, steps[name], outputs, graph)
                        running[fut] = (name, graph)
                        busy.add(name)
                if not running:
                    break
                finished, _ = wait(running, timeout=CANCEL_POLL_S, return_when=FIRST_COMPLETED)
                ctx.poll_cancel()
                for fut in finished:
                    name, graph = running.pop(fut)
                    done[name], outputs[name] = _outcome(ctx, f"{scope.job}_{name}", fut)
                    if graph is not None:
                        for o, (st, outs) in graph.results.items():
                            done[o], outputs[o] = st, outs
                    for o in owned(steps[name]):  # what the node never reached
                        if o in steps and o not in done:
                            settle(o, Status.NOT_STARTED)
                    if not succeeded(done[name]) and not ctx.continue_on_failure:
                        ctx.cancel.set()
                if ctx.cancel.is_set():
                    ctx.stop_processes()
        except BaseException:
            ctx.cancel.set()  # before the pool waits for its threads
            ctx.stop_processes()
            raise
    return done, {n: o for n, o in outputs.items() if n in steps}


def _run(
    ctx: StepContext,
    scope: Scope,
    name: str,
    step: Step,
    outputs: dict[str, Outputs],
    graph: Siblings | None,
) -> StepResult:
    bound = bind(scope, step, outputs)
    targets = {k: scope.output_target(o) for k, o in step["outputs"].items()}
    return ctx.run_step(StepCall(f"{scope.job}_{name}", step, bound, targets, scope, graph))


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
            up = cast("Upstream", outputs[src][out])
            if is_primitive(up):  # a control output is read as the value it holds
                bound[key] = {"literal": read_value(up, f"input '{key}'")}
            else:
                bound[key] = {"upstream": up}
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


@dataclass(frozen=True)
class RoundScope:
    """One round of a do_while or one item of a parallel_for: the body binds in the scope
    its node runs in, and its job is named under the node (`<node job>_<round>`)."""

    job: str
    inner: Scope

    @property
    def parent(self) -> Scope | None:
        return self.inner.parent

    def bind_input(self, key: str, binding: Binding) -> Binding | None:
        return self.inner.bind_input(key, binding)

    def template_value(self, name: str) -> str:
        return self.inner.template_value(name)

    def output_target(self, decl: OutputDecl) -> OutputDecl:
        return self.inner.output_target(decl)


# -- settings.on_init / on_finalize ---------------------------------------------------------
def run_pipeline(
    ctx: StepContext, scope: Scope, steps: Mapping[str, Step], settings: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, Outputs]]:
    """A pipeline job's graph with its init and finalize jobs: `on_init` runs before every
    other job and, if it does not complete, none of them starts; `on_finalize` runs after
    all of them, whatever their outcome, a failure or a cancel included (azure-ai-ml
    requires both to be isolated: nothing binds to or from them)."""
    init, final = settings.get("on_init"), settings.get("on_finalize")
    if not init and not final:
        return run_graph(ctx, scope, steps)
    done: dict[str, str] = {}
    outputs: dict[str, Outputs] = {}
    main = {n: s for n, s in steps.items() if n not in (init, final)}
    try:
        if init:
            d, o = run_graph(ctx, scope, {init: steps[init]})
            done.update(d)
            outputs.update(o)
        if not init or done[init] == Status.COMPLETED:
            d, o = run_graph(ctx, scope, main)
            done.update(d)
            outputs.update(o)
        else:
            done.update(dict.fromkeys(main, Status.NOT_STARTED))
    finally:
        if final:
            stopped = ctx.cancel.is_set()
            ctx.cancel.clear()  # the finalize job runs after a cancel too
            ctx.update_job(scope.job, status=Status.FINALIZING)
            try:
                d, o = run_graph(ctx, scope, {final: steps[final]})
            finally:
                if stopped:
                    ctx.cancel.set()
            done.update(d)
            outputs.update(o)
    return done, outputs
