"""Job names and job records: submission writes the job (and its steps) as NotStarted, and
every child job (a pipeline's step, a pipeline component's nested job, a sweep's trial) gets
its record from `child_record`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal import assets
from amlocal.errors import AmlocalError, InvalidInput
from amlocal.jobs import environments, output_paths
from amlocal.jobs.status import Status, now_iso

if TYPE_CHECKING:
    from amlocal.jobs.types import JobRecord, Plan, Step
    from amlocal.workspace import Workspace

_WORDS_A = (
    "amber brave calm dapper eager frosty gentle happy icy jolly keen lucid mellow nimble "
    "olive plucky quiet rosy sunny tidy upbeat vivid witty zesty"
).split()
_WORDS_B = (
    "apple badger cactus dream engine forest garden harbor island jacket kettle lemon mango "
    "needle orange pepper quill river sponge tiger umbrella violin whale yacht"
).split()


def new_job_name() -> str:
    """Names like Azure ML's generated ones: two words and a random suffix. Straight from
    os.urandom: `secrets` would import random, base64 and hmac (5 ms of job start-up, by
    `python -X importtime`) for the same bytes; the 40-bit suffix keeps names unique."""
    a, b, *suffix = os.urandom(7)
    return f"{_WORDS_A[a % len(_WORDS_A)]}_{_WORDS_B[b % len(_WORDS_B)]}_{bytes(suffix).hex()}"


def git_commit(path: Path) -> str | None:
    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def child_record(
    name: str,
    *,
    parent: str,
    kind: str,
    display_name: str,
    experiment_name: str,
    environment: str | None,
    status: Status = Status.NOT_STARTED,
    step_name: str | None = None,
    **extra: object,
) -> JobRecord:
    """The record of a child job (`job list --parent-job-name` lists it)."""
    record: dict[str, Any] = {
        "name": name,
        "display_name": display_name,
        "type": kind,
        "status": status.value,
        "parent_job_name": parent,
        **({"step_name": step_name} if step_name is not None else {}),
        "experiment_name": experiment_name,
        "properties": {},
        "inputs": {},
        "outputs": {},
        "environment": environment,
        **extra,
    }
    return record  # type: ignore[return-value]


def step_environment(step: Step) -> str | dict[str, object] | None:
    """Where each step kind keeps its environment (a reference or an inline definition):
    command components, a parallel task, a sweep trial."""
    spec, component = step.get("spec") or {}, step.get("component") or {}
    holder: dict[str, Any] = component
    if step["kind"] == "parallel":
        holder = component.get("task") or spec.get("task") or {}
    elif step["kind"] == "sweep":
        trial = spec.get("trial")
        holder = trial if isinstance(trial, dict) else {}
    env: str | dict[str, object] | None = holder.get("environment")
    return env


def resolve_step(ws: Workspace, step: Step, where: str) -> None:
    """What a step references in the workspace, resolved when it is submitted, as in Azure:
    `component: azureml:name:version|@latest` and its environment."""
    ref = step.get("component_ref")
    if ref:
        try:
            step["component"] = assets.public(assets.get(ws, "component", ref))
        except AmlocalError as exc:
            raise InvalidInput(f"{where}.component: {exc}") from None
    step["env"] = environments.resolve(ws, step_environment(step), where)


def submit(
    ws: Workspace,
    plan: Plan,
    *,
    name: str | None = None,
    isolate: bool = False,
    **extra: object,
) -> dict[str, Any]:
    """Create the job record (and its step records) with status NotStarted."""
    name = name or new_job_name()
    if ws.store.get("job", name) is not None:
        raise InvalidInput(f"a job named '{name}' already exists; job names are unique")
    base = Path(plan["base_dir"])
    plan["experiment_name"] = plan.get("experiment_name") or Path.cwd().name
    datastore = output_paths.datastore_name((plan.get("settings") or {}).get("default_datastore"))
    output_paths.check(ws, plan, datastore)
    pipeline = plan["kind"] == "pipeline"
    steps = plan["steps"] if pipeline else {"__job__": plan["step"]}
    for sname, step in steps.items():
        where = f"{plan['source']}: jobs.{sname}" if pipeline else plan["source"]
        resolve_step(ws, step, where)
    commit = git_commit(base)
    record: dict[str, Any] = {
        "name": name,
        "display_name": plan.get("display_name") or name,
        "type": plan["kind"],
        "status": Status.NOT_STARTED.value,
        "experiment_name": plan["experiment_name"],
        "description": plan.get("description"),
        "tags": plan.get("tags") or {},
        "properties": {"azureml.git.commit": commit} if commit else {},
        "creation_context": {
            "created_at": now_iso(),
            "created_by": os.environ.get("USER", "local"),
            "created_by_type": "User",
        },
        "compute": (plan.get("settings") or {}).get("default_compute")
        or plan["spec"].get("compute")
        or "local",
        "services": {"Tracking": {"endpoint": ws.mlflow_tracking_uri, "type": "Tracking"}},
        "inputs": _show_inputs(plan),
        "outputs": {},
        "settings": plan.get("settings"),
        "id": "azureml:" + ws.arm_id(f"jobs/{name}"),
        "_plan": plan,
        "_isolate": isolate,
        "_git_commit": commit,
        **extra,
    }
    if pipeline:
        record["jobs"] = {
            s: {"name": f"{name}_{s}", "status": Status.NOT_STARTED.value, "type": st["kind"]}
            for s, st in plan["steps"].items()
        }
    ws.job_dir(name).mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, dict[str, Any], str | None]] = [(name, record, None)]
    if pipeline:
        for s, st in plan["steps"].items():
            child = child_record(
                f"{name}_{s}",
                parent=name,
                kind=st["kind"],
                display_name=st["display_name"],
                experiment_name=plan["experiment_name"],
                environment=st["env"]["label"],
                step_name=s,
                creation_context=record["creation_context"],
            )
            rows.append((f"{name}_{s}", dict(child), name))
    # One transaction: a full disk (or a crash) leaves the whole job or nothing, never a
    # pipeline record without its steps that stays NotStarted for ever.
    ws.store.put_many("job", rows)
    return record


def _show_inputs(plan: Plan) -> dict[str, Any]:
    if plan["kind"] != "pipeline":
        return plan["spec"].get("inputs") or {}
    out = {}
    for k, v in plan["inputs"].items():
        out[k] = (
            v["literal"] if "literal" in v else {kk: vv for kk, vv in v.items() if vv is not None}
        )
    return out
