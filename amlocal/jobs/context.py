"""The seam between the engine and its step kinds.

A step kind (`amlocal.jobs.kinds.KINDS`) sees the job it runs in through `StepContext` and
nothing else: the workspace, where relative paths and outputs go, the cancel event, the
record writer, the MLflow run lifecycle, reuse, and the registry of running processes that a
cancel stops. `amlocal.jobs.runner.Execution` is the one implementation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from amlocal.jobs.status import Status, now_iso

if TYPE_CHECKING:
    from amlocal.jobs.mlflow_runs import MlflowRuns
    from amlocal.jobs.types import Binding, JobRecord, OutputDecl, Outputs, Step
    from amlocal.jobs.warm import ForkServer
    from amlocal.workspace import Workspace


class Stoppable(Protocol):
    """A running process a cancel must stop (`amlocal.jobs.process.StepProcess`)."""

    def kill(self) -> None: ...


class Scope(Protocol):
    """Where a graph's bindings are evaluated: a pipeline job's inputs and outputs, or a
    pipeline component node's (chained to the scope its node runs in)."""

    @property
    def job(self) -> str:
        """The job whose children the graph's steps are (`<job>_<step>` names them)."""
        ...

    @property
    def parent(self) -> Scope | None: ...

    def bind_input(self, key: str, binding: Binding) -> Binding | None:
        """A `parent_input` binding in this scope (None: the input has no value)."""
        ...

    def template_value(self, name: str) -> str:
        """What `${{parent.inputs.<name>}}` renders to inside a string."""
        ...

    def output_target(self, decl: OutputDecl) -> OutputDecl:
        """A step output bound to `${{parent.outputs.x}}` as the step should write it."""
        ...


StepResult = tuple[str, "Outputs"]  # a terminal status, and outputs downstream steps read


@dataclass(frozen=True)
class Siblings:
    """The graph a step runs in, as a control-flow node sees it: the graph's steps, the
    outputs of those that completed, and `results`, where the node reports the steps it
    owns (blocks or body) that it ran or skipped, for the scheduler to record."""

    steps: Mapping[str, Step]
    outputs: dict[str, Outputs]
    results: dict[str, StepResult] = field(default_factory=dict)


@dataclass(frozen=True)
class StepCall:
    """One step job to run: its planned step, its inputs bound in its parent's scope, and
    its output declarations."""

    job: str
    step: Step
    bound: dict[str, Binding]
    targets: dict[str, OutputDecl]
    scope: Scope | None = None
    graph: Siblings | None = None


class StepContext(Protocol):
    """What a step kind may use of the job it runs in."""

    ws: Workspace
    base: Path  # relative paths of the job YAML resolve here
    datastore: str  # the pipeline's default datastore
    experiment_name: str
    standalone: bool  # a job of its own, not a step of a pipeline
    cancel: threading.Event  # set: stop promptly
    continue_on_failure: bool
    warm: ForkServer | None
    mlflow: MlflowRuns

    @property
    def user_canceled(self) -> bool: ...

    def update_job(self, job: str, **fields: object) -> None:
        """Write fields to a job record (status changes also update the pipeline's view)."""
        ...

    def python_bin_dir(self, env: dict[str, object]) -> Path:
        """The interpreter's folder for a resolved environment."""
        ...

    def environment_identity(self, env: dict[str, object]) -> str:
        """What a step's reuse fingerprint records of its environment: its definition and
        the interpreter it would run in (the project venv, or which built venv)."""
        ...

    def warn_environment(self, env: dict[str, object]) -> None: ...

    def reuse(self, step: Step, key: str, job: str, shown: dict[str, object]) -> JobRecord | None:
        """The earlier job reused for fingerprint `key` (recorded, with `shown`, as this
        job's outcome), or None: run it."""
        ...

    def remember(self, step: Step, key: str, job: str) -> None:
        """Record a completed job as reusable under fingerprint `key`."""
        ...

    def track(self, job: str, proc: Stoppable) -> None:
        """Register a running process, so a cancel stops it."""
        ...

    def untrack(self, job: str) -> None: ...

    def stop_processes(self) -> None:
        """Stop every tracked process (on cancel)."""
        ...

    def poll_cancel(self) -> None:
        """Notice a `job cancel` from another process (throttled)."""
        ...

    def run_step(self, call: StepCall) -> StepResult:
        """Run a step of any kind (a graph runs its steps through this)."""
        ...


def mark_running(
    ctx: StepContext,
    job: str,
    run_id: str | None,
    log: Path,
    shown: Mapping[str, object],
    properties: dict[str, str] | None = None,
) -> dict[str, str]:
    """Record that a step job started, as every kind shows it: Running, its start time, its
    log and its MLflow run (`properties['mlflow.runId']`, after `properties`), with `shown`;
    returns the properties written, for the job's end record to keep."""
    props = {**(properties or {}), **({"mlflow.runId": run_id} if run_id else {})}
    ctx.update_job(
        job, status=Status.RUNNING, start_time=now_iso(), properties=props, _log=str(log), **shown
    )
    return props
