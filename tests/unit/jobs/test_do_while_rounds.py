"""do_while rounds run on one worker thread, as a pipeline's steps share its pool's: a new
thread per round opened the workspace store's and MLflow's per-thread connections again
each round (bench/pipeline.py, "do_while: per added round")."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from amlocal.jobs.context import Siblings, StepCall, StepResult
from amlocal.jobs.graph import PipelineScope
from amlocal.jobs.kinds import do_while
from amlocal.jobs.plan import make_step


class Store:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def put(self, kind: str, name: str, data: dict[str, Any], *, parent: str) -> None:
        self.records[name] = {**data, "_parent": parent}


class Context:
    """A StepContext whose steps complete at once, noting the thread each ran on."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.continue_on_failure = True
        self.user_canceled = False
        self.experiment_name = "e"
        self.ws = SimpleNamespace(store=Store())
        self.threads: list[threading.Thread] = []
        self.jobs: list[str] = []

    def run_step(self, call: StepCall) -> StepResult:
        self.threads.append(threading.current_thread())
        self.jobs.append(call.job)
        out = {"type": "uri_folder", "mode": "rw_mount", "local_path": f"/x/{call.job}", "uri": "u"}
        return "Completed", {"o": out}  # type: ignore[dict-item]

    def update_job(self, job: str, **fields: object) -> None:
        pass

    def poll_cancel(self) -> None:
        pass

    def stop_processes(self) -> None:
        pass


def test_every_round_runs_on_one_worker_thread(tmp_path: Path) -> None:
    body = {
        "type": "command",
        "component": {
            "command": "python a.py",
            "inputs": {"u": {"type": "uri_folder", "optional": True}},
            "outputs": {"o": {"type": "uri_folder"}},
        },
    }
    loop = {
        "type": "do_while",
        "body": "${{parent.jobs.s}}",
        "mapping": {"o": "u"},
        "limits": {"max_iteration_count": 4},
    }
    steps = {
        "s": make_step("s", body, tmp_path, where="jobs.s"),
        "loop": make_step("loop", loop, tmp_path, where="jobs.loop"),
    }
    ctx = Context()
    call = StepCall(
        "p_loop", steps["loop"], {}, {}, PipelineScope("p", {}, {}), Siblings(steps, {})
    )
    status, outs = do_while.run(ctx, call)  # type: ignore[arg-type]
    assert status == "Completed"
    assert ctx.jobs == ["p_loop_0", "p_loop_1", "p_loop_2", "p_loop_3"]
    assert sorted(ctx.ws.store.records) == ctx.jobs  # a child record per round
    assert ctx.threads[0] is not threading.current_thread()  # not the node's own thread
    assert all(t is ctx.threads[0] for t in ctx.threads), "a new thread per round"
    assert outs["o"]["local_path"] == "/x/p_loop_3"  # the last round's
