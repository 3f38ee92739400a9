"""The shapes of the engine's data: plans, steps, bindings, output declarations and job
records. Plain JSON underneath (the plan cache and the store hold them as such): these are
TypedDicts, so mypy checks the keys that code reads and writes, at no run-time cost."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# azure-ai-ml's `_to_dict()` of a component or node: its keys are azure-ai-ml's, not ours.
Spec = dict[str, Any]


class DataRef(TypedDict, total=False):
    """A data input as written in YAML: `{type, path, mode}`."""

    type: str | None
    path: str | None
    mode: str | None


class OutputDecl(TypedDict, total=False):
    """An output as declared by a step, a pipeline or a component (settings the user chose),
    or bound to the enclosing pipeline's output (`parent_output`)."""

    type: str
    path: str | None
    mode: str | None
    parent_output: str


class OutputValue(TypedDict):
    """A resolved output: where it is written and how Azure ML would name it."""

    type: str
    mode: str
    local_path: str
    uri: str


class Upstream(TypedDict, total=False):
    """What an input bound to another step's output reads."""

    local_path: str
    uri: str | None
    type: str | None


class Binding(TypedDict, total=False):
    """One input of a step, as planned (`parent_input`, `step_output`, `template`, `data`,
    `literal`) or as bound in its parent's scope (`literal`, `data`, `upstream`)."""

    parent_input: str
    step_output: list[str]  # [step, output]
    template: str
    data: DataRef
    literal: Any
    upstream: Upstream
    mode: str | None


class Step(TypedDict):
    """One job of a pipeline (or a standalone job's only one)."""

    name: str
    kind: str  # a key of amlocal.jobs.kinds.KINDS
    display_name: str
    component_ref: str | None
    component: Spec
    inputs: dict[str, Binding]
    outputs: dict[str, OutputDecl]
    environment_variables: dict[str, Any]
    limits: dict[str, Any]
    compute: str | None
    resources: dict[str, Any] | None
    spec: Spec
    control: NotRequired[dict[str, Any]]  # a control-flow node's parsed keys (plan.control_of)
    env: NotRequired[dict[str, Any]]  # the resolved environment, set at submission
    batch: NotRequired[dict[str, Any]]  # a batch-endpoint invocation's settings


class PipelineInput(TypedDict, total=False):
    """A pipeline-level input: a literal or data."""

    literal: Any
    type: str | None
    path: str | None
    mode: str | None


class Plan(TypedDict):
    """What the runner executes: a pipeline (`steps`) or a standalone job (`step`)."""

    kind: str
    source: str
    base_dir: str
    spec: Spec
    experiment_name: str
    display_name: str | None
    description: str | None
    tags: dict[str, str]
    settings: NotRequired[dict[str, Any]]
    inputs: NotRequired[dict[str, PipelineInput]]
    outputs: NotRequired[dict[str, OutputDecl]]
    steps: NotRequired[dict[str, Step]]
    step: NotRequired[Step]


class JobRecord(TypedDict, total=False):
    """A job in the store (`job show` prints it without the `_private` keys)."""

    name: str
    display_name: str
    type: str
    status: str
    parent_job_name: str
    step_name: str
    experiment_name: str
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    parameters: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    environment: str | None
    creation_context: dict[str, str]
    start_time: str
    end_time: str
    command: str | None
    error: dict[str, str]
    jobs: dict[str, dict[str, Any]]
    _log: str | None
    _plan: Plan
    _isolate: bool
    _git_commit: str | None
    _runner_pid: int


Outputs = dict[str, OutputValue]
