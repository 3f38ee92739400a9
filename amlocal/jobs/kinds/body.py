"""The body of a loop node (`do_while`, `parallel_for`): found in its pipeline, started,
and given one child job record per round or item (`<node job>_<i>`, a child of the node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs.records import child_record
from amlocal.jobs.status import Status, now_iso

if TYPE_CHECKING:
    from amlocal.jobs.context import Scope, Siblings, StepCall, StepContext, StepResult
    from amlocal.jobs.types import Outputs, Step


@dataclass(frozen=True)
class Body:
    graph: Siblings  # the pipeline's steps and outputs the node runs in
    scope: Scope
    name: str  # the body step's name in the pipeline
    step: Step
    job: str  # the body step's own job record (`<pipeline job>_<body>`)

    def start(self, ctx: StepContext, node_job: str, **fields: object) -> None:
        """The node and its body step are Running from now."""
        started = now_iso()
        ctx.update_job(node_job, status=Status.RUNNING, start_time=started, **fields)
        ctx.update_job(self.job, status=Status.RUNNING, start_time=started)

    def child(self, ctx: StepContext, node_job: str, i: int, **extra: Any) -> str:
        """Record round or item `i` as a child job of the node; its job name."""
        name = f"{node_job}_{i}"
        record = child_record(
            name,
            parent=node_job,
            kind=self.step["kind"],
            display_name=f"{self.step['display_name']}_{i}",
            experiment_name=ctx.experiment_name,
            environment=(self.step.get("env") or {}).get("label"),
            step_name=self.name,
            **extra,
        )
        ctx.ws.store.put("job", name, dict(record), parent=node_job)
        return name

    def finish(
        self,
        ctx: StepContext,
        node_job: str,
        status: str,
        outputs: Outputs,
        error: str,
        **extra: Any,
    ) -> StepResult:
        """End the node and its body step alike (status, outputs, `error` if it failed), and
        give the pipeline the body's outcome; the node's result."""
        fields: dict[str, Any] = {"status": status, "end_time": now_iso(), "outputs": outputs}
        if status == Status.FAILED:
            fields["error"] = {"message": error}
        ctx.update_job(self.job, **fields, **extra)
        self.graph.results[self.name] = (status, outputs)
        ctx.update_job(node_job, **fields, **extra)
        return status, outputs


def body_of(call: StepCall, kind: str) -> Body:
    """The body of the loop node `call` runs; only a pipeline's node has one."""
    graph, scope = call.graph, call.scope
    if graph is None or scope is None:
        raise InvalidInput(f"{call.job}: a {kind} node runs only inside a pipeline")
    name: str = call.step["control"]["body"]
    return Body(graph, scope, name, graph.steps[name], f"{scope.job}_{name}")
