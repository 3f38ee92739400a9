"""amlocal.jobs.graph: the one scheduler, driven by a context whose steps are functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amlocal.jobs.context import StepCall, StepResult
from amlocal.jobs.graph import NodeScope, PipelineScope, bind, run_graph
from amlocal.jobs.plan import make_step
from amlocal.jobs.types import Step


class Context:
    """A StepContext whose steps run `behaviour[step name](call)`."""

    def __init__(self, behaviour: dict[str, Callable[[StepCall], str]], cosf: bool = True) -> None:
        self.behaviour = behaviour
        self.cancel = threading.Event()
        self.continue_on_failure = cosf
        self.calls: list[StepCall] = []
        self.updates: list[tuple[str, dict[str, object]]] = []
        self.stopped = 0

    def run_step(self, call: StepCall) -> StepResult:
        self.calls.append(call)
        status = self.behaviour[call.step["name"]](call)
        return status, {
            "o": {
                "type": "uri_folder",
                "mode": "rw_mount",
                "local_path": f"/x/{call.job}",
                "uri": "u",
            }
        }

    def update_job(self, job: str, **fields: object) -> None:
        self.updates.append((job, fields))

    def stop_processes(self) -> None:
        self.stopped += 1

    def poll_cancel(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:  # the rest of StepContext is not used here
        raise AttributeError(name)


def _steps(tmp_path: Path, edges: dict[str, list[str]]) -> dict[str, Step]:
    steps = {}
    for name, deps in edges.items():
        inputs = {d: f"${{{{parent.jobs.{d}.outputs.o}}}}" for d in deps}
        steps[name] = make_step(name, {"inputs": inputs}, tmp_path, where="t")
    return steps


def ok(call: StepCall) -> str:
    return "Completed"


def fail(call: StepCall) -> str:
    return "Failed"


def _scope(job: str = "p") -> PipelineScope:
    return PipelineScope(job, {}, {})


def test_dependencies_run_first_and_outputs_flow_downstream(tmp_path: Path) -> None:
    ctx = Context({"a": ok, "b": ok, "c": ok})
    done, outs = run_graph(ctx, _scope(), _steps(tmp_path, {"c": ["a", "b"], "a": [], "b": ["a"]}))
    assert done == {"a": "Completed", "b": "Completed", "c": "Completed"}
    order = [c.step["name"] for c in ctx.calls]
    assert order.index("a") < order.index("b") < order.index("c")
    c_call = next(c for c in ctx.calls if c.step["name"] == "c")
    assert c_call.job == "p_c"
    assert c_call.bound["a"] == {"upstream": outs["a"]["o"]}


def test_a_failure_leaves_dependants_not_started_and_others_running(tmp_path: Path) -> None:
    ctx = Context({"bad": fail, "after": ok, "other": ok})
    done, _ = run_graph(ctx, _scope(), _steps(tmp_path, {"bad": [], "after": ["bad"], "other": []}))
    assert done == {"bad": "Failed", "after": "NotStarted", "other": "Completed"}


def test_without_continue_on_failure_unstarted_jobs_are_canceled(tmp_path: Path) -> None:
    ctx = Context({"bad": fail, "slow": ok, "later": ok}, cosf=False)
    started = threading.Event()

    def slow(call: StepCall) -> str:
        started.set()
        time.sleep(0.2)
        return "Completed"

    ctx.behaviour["slow"] = slow
    steps = _steps(tmp_path, {"slow": [], "bad": [], "later": ["slow"]})
    done, _ = run_graph(ctx, _scope(), steps)
    assert done["bad"] == "Failed"
    assert done["later"] == "Canceled"  # never started: the graph was canceled
    assert ctx.cancel.is_set() and ctx.stopped >= 1


def test_a_resolution_error_fails_that_job_with_its_message(tmp_path: Path) -> None:
    def boom(call: StepCall) -> str:
        raise ValueError("input 'x' has no value")

    ctx = Context({"a": boom})
    done, _ = run_graph(ctx, _scope(), _steps(tmp_path, {"a": []}))
    assert done == {"a": "Failed"}
    assert ctx.updates[-1][0] == "p_a"
    assert ctx.updates[-1][1]["error"] == {"message": "input 'x' has no value"}


def test_scopes_bind_parent_inputs_their_own_way(tmp_path: Path) -> None:
    step = make_step(
        "s",
        {
            "inputs": {
                "d": "${{parent.inputs.d}}",
                "n": "${{parent.inputs.n}}",
                "t": "n=${{parent.inputs.n}}",
            }
        },
        tmp_path,
        where="t",
    )
    top = PipelineScope(
        "p", {"d": {"type": "uri_folder", "path": "/data", "mode": None}, "n": {"literal": 3}}, {}
    )
    assert bind(top, step, {}) == {
        "d": {"data": {"type": "uri_folder", "path": "/data", "mode": None}},
        "n": {"literal": 3},
        "t": {"literal": "n=3"},
    }
    node = NodeScope(
        "p_node",
        {"n": 4},
        {"d": {"local_path": "/resolved", "uri": "u", "type": "uri_folder"}},
        {"out": {"type": "uri_file"}},
        parent=top,
    )
    assert bind(node, step, {}) == {
        "d": {"upstream": {"local_path": "/resolved", "uri": "u", "type": "uri_folder"}},
        "n": {"literal": 4},
        "t": {"literal": "n=4"},
    }
    assert node.output_target({"parent_output": "out", "mode": "upload"}) == {
        "type": "uri_file",
        "mode": "upload",
    }


def test_a_step_output_bound_to_the_pipelines_output_takes_its_declaration() -> None:
    top = PipelineScope("p", {}, {"report": {"type": "uri_file", "path": None, "mode": None}})
    assert top.output_target({"parent_output": "report", "mode": "upload"}) == {
        "type": "uri_file",
        "path": None,
        "mode": "upload",
    }
    assert top.output_target({"parent_output": "report"})["mode"] is None
    own = {"type": "uri_folder", "path": None, "mode": None}
    assert top.output_target(own) is own
