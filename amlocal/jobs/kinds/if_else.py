"""`type: if_else` nodes: run `true_block` or `false_block` by a boolean `condition`.

The condition is a literal, a pipeline input, or an upstream step's boolean control output
(read after that step completed: the scheduler starts this node once it has). The blocks are
steps of the same pipeline that this node owns: the chosen ones run through the scheduler,
in the node's parent scope, exactly as if they were ordinary steps (reuse, records, failure
rules); the others are Skipped, and so is every step that binds to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amlocal.errors import InvalidInput
from amlocal.jobs.control_io import binding_value, to_bool
from amlocal.jobs.graph import run_graph
from amlocal.jobs.status import Status, now_iso, succeeded

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run an if_else node; see amlocal.jobs.kinds for the contract."""
    graph, scope, job = call.graph, call.scope, call.job
    if graph is None or scope is None:
        raise InvalidInput(f"{job}: an if_else node runs only inside a pipeline")
    ctl = call.step["control"]
    where = f"jobs.{call.step['name']}.condition"
    value = to_bool(binding_value(ctl["condition"], scope, graph.outputs, where), where)
    chosen = ctl["true_block"] if value else ctl["false_block"]
    skipped = ctl["false_block"] if value else ctl["true_block"]
    ctx.update_job(
        job,
        status=Status.RUNNING,
        start_time=now_iso(),
        properties={"azureml.condition": str(value).lower()},
        condition=value,
        chosen_block="true_block" if value else "false_block",
    )
    for name in skipped:
        ctx.update_job(f"{scope.job}_{name}", status=Status.SKIPPED, end_time=now_iso())
        graph.results[name] = (Status.SKIPPED, {})
    done, outs = run_graph(ctx, scope, {n: graph.steps[n] for n in chosen}, upstream=graph.outputs)
    for name in chosen:
        graph.results[name] = (done.get(name, Status.NOT_STARTED), outs.get(name, {}))
    if ctx.cancel.is_set() and ctx.user_canceled:
        status = Status.CANCELED
    else:
        status = Status.COMPLETED if all(succeeded(s) for s in done.values()) else Status.FAILED
    fields: dict[str, object] = {"status": status, "end_time": now_iso()}
    if status == Status.FAILED:
        failed = [n for n, s in done.items() if not succeeded(s)]
        fields["error"] = {"message": f"block job(s) not completed: {', '.join(failed)}"}
    ctx.update_job(job, **fields)
    return status, {}
