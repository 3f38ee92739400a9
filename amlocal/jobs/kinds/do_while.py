"""`type: do_while` nodes: run the body, then again while its `condition` output is true.

Each round is one job of the body's kind named `<node job>_<round>` (a child of the node:
`job list --parent-job-name <node job>`), run through the scheduler in a `RoundScope`, so
reuse, records, logs and cancel work as for any step; the rounds share one worker thread. Round 0 binds the body's inputs as
written; each later round binds the inputs named in `mapping` to the previous round's
outputs (a control output as its value, data by path). The loop ends when the condition
output is false, after `limits.max_iteration_count` rounds, or when a round does not
complete. The node's outputs, and the body step's, are the last round's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs.control_io import is_primitive, read_value, to_bool
from amlocal.jobs.graph import RoundScope, run_graph
from amlocal.jobs.kinds.body import body_of
from amlocal.jobs.status import Status

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult
    from amlocal.jobs.types import Binding, Outputs, Step


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run a do_while node; see amlocal.jobs.kinds for the contract."""
    job, ctl = call.job, call.step["control"]
    loop = body_of(call, "do_while")
    graph, scope, body, body_name = loop.graph, loop.scope, loop.step, loop.name
    where = f"jobs.{call.step['name']}"
    loop.start(ctx, job)
    inputs: dict[str, Binding] = dict(body["inputs"])
    status: str = Status.COMPLETED
    outs: Outputs = {}
    rounds = 0
    error = ""
    try:
        # One thread runs every round, as a pipeline's pool runs its steps: a thread per
        # round would open its own store and MLflow connections each time (~1.5 ms).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=job) as pool:
            for i in range(ctl["max_iteration_count"]):
                rounds = i + 1
                loop.child(ctx, job, i, iteration=i)
                round_step: Step = {**body, "inputs": inputs}
                done, got = run_graph(
                    ctx,
                    RoundScope(job, scope),
                    {str(i): round_step},
                    upstream=graph.outputs,
                    pool=pool,
                )
                status, outs = done.get(str(i), Status.NOT_STARTED), got.get(str(i), {})
                if status != Status.COMPLETED or not _again(
                    ctl["condition"], outs, f"{where}.condition"
                ):
                    break
                inputs = {**body["inputs"], **_fed(ctl["mapping"], outs, f"{where}.mapping")}
    except InvalidInput as exc:  # a control value the loop could not read
        status, error = Status.FAILED, str(exc)
    if status != Status.COMPLETED and ctx.cancel.is_set() and ctx.user_canceled:
        status = Status.CANCELED
    elif status != Status.COMPLETED:
        status = Status.FAILED
    why = error or f"round {rounds - 1} of the body '{body_name}' did not complete"
    return loop.finish(ctx, job, status, outs, why, iterations=rounds)


def _again(condition: Any, outs: Outputs, where: str) -> bool:
    """Whether another round runs: the condition output's value (no condition, or a literal
    true: until the limit)."""
    if condition is None or isinstance(condition, bool):
        return condition is not False
    out = outs.get(condition)
    if out is None:
        raise InvalidInput(f"{where}: the body gave no output '{condition}'")
    return to_bool(read_value(out, f"{where} (output '{condition}')"), where)


def _fed(mapping: dict[str, list[str]], outs: Outputs, where: str) -> dict[str, Binding]:
    """The next round's inputs from this round's outputs, as `mapping` links them."""
    fed: dict[str, Binding] = {}
    for out, names in mapping.items():
        value = outs.get(out)
        if value is None:
            raise InvalidInput(f"{where}: the body gave no output '{out}'")
        for name in names:
            if is_primitive(value):
                fed[name] = {"literal": read_value(value, f"{where}.{out}")}
            else:
                fed[name] = {
                    "upstream": {
                        "local_path": value["local_path"],
                        "uri": value["uri"],
                        "type": value["type"],
                    }
                }
    return fed
