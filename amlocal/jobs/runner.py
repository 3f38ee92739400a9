"""Executing a job: `Execution` runs one job to a terminal state in the detached runner
process (`python -m amlocal.jobs.runner HOME NAME`), a pipeline through the scheduler
(`amlocal.jobs.graph`), a standalone job as a one-step run of its kind.

Everything the engine knows is written to the workspace store as it happens, so any CLI
process can show, stream or cancel a job, and a crashed runner leaves a readable record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from amlocal import tracking
from amlocal.errors import AmlocalError, disk_full
from amlocal.jobs import environments, kinds, output_paths, process, reuse, reuse_why, warm
from amlocal.jobs.context import StepCall, StepResult, Stoppable
from amlocal.jobs.graph import CANCEL_POLL_S, PipelineScope, run_pipeline
from amlocal.jobs.mlflow_runs import MlflowRuns
from amlocal.jobs.records import submit
from amlocal.jobs.status import Status, now_iso, succeeded
from amlocal.workspace import Workspace

if TYPE_CHECKING:
    from amlocal.jobs.types import Binding, JobRecord, Outputs, Plan, Step

__all__ = ["Execution", "execute", "spawn_runner", "submit"]


def spawn_runner(ws: Workspace, name: str) -> int:
    """Run the job in a detached process that outlives this CLI (as Azure runs it remotely)."""
    from amlocal.resident import client

    env = {**os.environ, "AMLOCAL_HOME": str(ws.home)}
    with (ws.job_dir(name) / "runner.log").open("ab") as log:
        pid = client.spawn("runner", [str(ws.home), name], env, log.fileno())
        if pid is None:
            pid = subprocess.Popen(
                [sys.executable, "-m", "amlocal.jobs.runner", str(ws.home), name],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            ).pid
    ws.store.update("job", name, lambda r: r.update(_runner_pid=pid))
    return pid


class Execution:
    """Runs one job to a terminal state, writing every transition to the store; the
    `StepContext` its steps run in."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.ws = ws
        self.name = name
        record = ws.store.get("job", name)
        if record is None:
            raise AmlocalError(f"job '{name}' does not exist")
        self.record = record
        self.plan: Plan = record["_plan"]
        self.base = Path(self.plan["base_dir"])
        self.experiment_name = self.plan["experiment_name"]
        self.standalone = self.plan["kind"] != "pipeline"
        self.cancel = threading.Event()
        self.procs: dict[str, Stoppable] = {}
        settings = self.plan.get("settings") or {}
        self.datastore = output_paths.datastore_name(settings.get("default_datastore"))
        self.force_rerun = bool(settings.get("force_rerun"))
        cosf = settings.get("continue_on_step_failure")
        self.continue_on_failure = True if cosf is None else bool(cosf)
        self.warned_envs: set[str] = set()
        self._user_canceled = False
        self._last_poll = 0.0
        self.warm: warm.ForkServer | None = None
        self.mlflow = MlflowRuns(
            ws,
            self.experiment_name,
            name,
            pipeline=not self.standalone,
            git_commit=record.get("_git_commit"),
            job_tags=_job_tags(record),
            on_pipeline_run=self._pipeline_run_started,
        )

    @property
    def user_canceled(self) -> bool:
        return self._user_canceled

    def request_cancel(self) -> None:
        self._user_canceled = True
        self.cancel.set()

    def poll_cancel(self) -> None:
        """A `job cancel` from another process marks the record CancelRequested."""
        if time.monotonic() - self._last_poll < CANCEL_POLL_S:
            return
        self._last_poll = time.monotonic()
        r = self.ws.store.get("job", self.name) or {}
        if r.get("status") == Status.CANCEL_REQUESTED:
            self.request_cancel()

    # -- StepContext ------------------------------------------------------------------------
    def update_job(self, job: str, **fields: object) -> None:
        self.ws.store.update("job", job, lambda r: r.update(fields))
        if job != self.name and not self.standalone and "status" in fields:
            step = job[len(self.name) + 1 :]
            props = cast("dict[str, str]", fields.get("properties") or {})

            def upd(r: dict[str, Any]) -> None:
                if step not in r["jobs"]:  # a job nested in a pipeline-component step
                    return
                r["jobs"][step].update(status=fields["status"])
                if props.get("azureml.isreused"):
                    r["jobs"][step]["reused"] = True

            self.ws.store.update("job", self.name, upd)

    def python_bin_dir(self, env: dict[str, Any]) -> Path:
        return environments.python_bin_dir(self.ws, env, bool(self.record.get("_isolate")))

    def environment_identity(self, env: dict[str, Any]) -> str:
        # The project venv keeps the identity alone (reuse keys from before this was added)
        where = environments.interpreter(env, bool(self.record.get("_isolate")))
        return env["identity"] if where == "project" else f"{env['identity']}|{where}"

    def warn_environment(self, env: dict[str, Any]) -> None:
        if env.get("definition") and env["identity"] not in self.warned_envs:
            self.warned_envs.add(env["identity"])
            for problem in environments.mismatches(env["definition"]):
                sys.stderr.write(f"WARNING: environment {env['label']}: {problem}\n")
        if env.get("curated") and env["identity"] not in self.warned_envs:
            self.warned_envs.add(env["identity"])
            why = env.get("why") or f"{env['label']} is an Azure ML registry environment"
            sys.stderr.write(f"WARNING: {why}; running in the project venv instead\n")

    def reuse(self, step: Step, key: str, job: str, shown: dict[str, object]) -> JobRecord | None:
        hit = reuse.reusable(
            self.ws.store,
            step,
            key,
            job,
            force_rerun=self.force_rerun,
            pipeline=not self.standalone,
        )
        if hit is not None:
            self.update_job(job, **{**reuse.reused_fields(hit), **shown})
        elif reuse.enabled(step, force_rerun=self.force_rerun, pipeline=not self.standalone):
            why = reuse_why.explain(self.ws.store, step, key)  # which part changed
            if why is not None:
                self.update_job(job, rerun=why)
        return hit

    def remember(self, step: Step, key: str, job: str) -> None:
        if reuse.enabled(step, force_rerun=self.force_rerun, pipeline=not self.standalone):
            reuse.remember(self.ws.store, key, job)
            reuse_why.remember(self.ws.store, step, key, job)

    def track(self, job: str, proc: Stoppable) -> None:
        self.procs[job] = proc

    def untrack(self, job: str) -> None:
        self.procs.pop(job, None)

    def stop_processes(self) -> None:
        for p in list(self.procs.values()):
            p.kill()

    def run_step(self, call: StepCall) -> StepResult:
        return kinds.run(self, call)

    # -- the job ----------------------------------------------------------------------------
    def run(self) -> str:
        self.update_job(
            self.name, status=Status.RUNNING, start_time=now_iso(), _runner_pid=os.getpid()
        )
        reserve = _reserve(self.ws.job_dir(self.name) / ".reserve")
        try:
            status = self._run_standalone() if self.standalone else self._run_pipeline()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self._user_canceled = True
            self.cancel.set()
            self.stop_processes()
            status = Status.CANCELED if self._user_canceled else Status.FAILED
            message = str(exc) or type(exc).__name__
            if disk_full(exc):  # the room kept aside is what lets the record say so
                reserve.unlink(missing_ok=True)
                message = f"the disk holding the workspace is full: {message}"
            self.update_job(
                self.name, status=status, end_time=now_iso(), error={"message": message}
            )
            self.mlflow.finish(status)
            if not isinstance(exc, (KeyboardInterrupt, AmlocalError)):
                raise
            return status
        finally:
            reserve.unlink(missing_ok=True)
        self.update_job(self.name, status=status, end_time=now_iso())
        self.mlflow.finish(status)
        return status

    def _pipeline_run_started(self, run_id: str) -> None:
        props = {**self.record.get("properties", {}), "mlflow.runId": run_id}
        self.update_job(self.name, properties=props)

    def _run_standalone(self) -> str:
        step = self.plan["step"]
        bound = {k: _standalone_binding(v) for k, v in step["inputs"].items()}
        status, _ = self.run_step(StepCall(self.name, step, bound, step["outputs"]))
        return status

    def _run_pipeline(self) -> str:
        steps = self.plan["steps"]
        if warm.enabled() and sum(s.get("kind") == "command" for s in steps.values()) > 1:
            bin_dir = Path(sys.executable).parent
            base = process.base_env(bin_dir) | self.mlflow.env("", None)
            self.warm = warm.ForkServer(base, bin_dir, self.ws.home / "warm")
            if not tracking.direct_writes(self.ws):
                # The first run needs MLflow itself (a new store, say): seconds before the
                # first step can start, in which the server can preload for free.
                self.warm.arm()
        scope = PipelineScope(self.name, self.plan["inputs"], self.plan["outputs"])
        try:
            try:
                done, outputs = run_pipeline(self, scope, steps, self.plan.get("settings") or {})
            except KeyboardInterrupt:
                self.request_cancel()
                raise
        finally:
            if self.warm is not None:
                self.warm.close()
        self._collect_pipeline_outputs(outputs)
        if self._user_canceled:
            return Status.CANCELED
        return Status.COMPLETED if all(succeeded(s) for s in done.values()) else Status.FAILED

    def _collect_pipeline_outputs(self, outputs: dict[str, Outputs]) -> None:
        shown: dict[str, Any] = {}
        for sname, step in self.plan["steps"].items():
            for key, o in step["outputs"].items():
                if "parent_output" in o and key in outputs.get(sname, {}):
                    shown[o["parent_output"]] = outputs[sname][key]
        self.update_job(self.name, outputs=shown)


RESERVE_BYTES = 1 << 20


def _reserve(path: Path) -> Path:
    """Keep 1 MiB aside while the job runs: when a step fills the disk, the runner frees it
    to record the job as Failed and why (SQLite needs room for its journal), instead of dying
    with the record left Running and later blamed on a runner that exited."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            else:  # macOS has no posix_fallocate: the blocks are written instead
                os.write(fd, bytes(RESERVE_BYTES))
        finally:
            os.close(fd)
    except OSError:
        path.unlink(missing_ok=True)  # already full, or no fallocate: run without it
    return path


def _job_tags(record: dict[str, Any]) -> dict[str, str]:
    """The job's YAML `tags` and `description` on its own MLflow run, as Azure sets them."""
    tags = {str(k): str(v) for k, v in (record.get("tags") or {}).items()}
    if record.get("description"):
        tags["mlflow.note.content"] = str(record["description"])
    return tags


def _standalone_binding(b: Binding) -> Binding:
    if "template" in b:
        return {"literal": b["template"]}
    return b


def execute(ws: Workspace, name: str) -> str:
    """Run a job in this process; SIGTERM (from `job cancel`) and Ctrl-C cancel it."""
    ex = Execution(ws, name)

    def on_term(signum: int, frame: FrameType | None) -> None:
        ex.request_cancel()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    return ex.run()


def main(argv: list[str]) -> int:
    """The detached runner: `HOME NAME`."""
    home, job_name = argv[0], argv[1]
    final = execute(Workspace(Path(home)), job_name)
    return 0 if final == Status.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
