"""Schedules as `az ml schedule` stores them, and what one firing does.

A schedule YAML is loaded and validated by azure-ai-ml (`load_schedule`, the loader `az ml
schedule create` runs). Its action is resolved at create time, so a broken job file fails
`create` (exit 2), not a firing at 02:00:
- `create_job: <file>` or `{job: <file>, inputs/settings/...}`: the job file, with the other
  keys as overrides (Azure's "runtime settings" form);
- `create_job: azureml:<job-name>` (or `{job: azureml:...}`): a new run of an existing job;
- `create_monitor:`: a model-monitoring run (amlocal.monitoring).

A firing submits an ordinary job with the schedule's name in its properties. The fire time is
claimed in the store (a compare-and-set in one SQLite transaction) *before* the job is
submitted, so a daemon killed between the two never submits the same firing twice.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal import yamlsafe
from amlocal.errors import InvalidInput, NotFound
from amlocal.schedules import expressions
from amlocal.schedules.triggers import Trigger
from amlocal.workspace import Workspace, public

if TYPE_CHECKING:
    from amlocal.jobs.types import Plan

KIND = "schedule"
# Azure ML resource names: letters, digits, '-' and '_', starting with a letter or digit.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
PROP_NAME = "azureml.scheduleName"
PROP_TIME = "azureml.scheduleFireTime"
_OVERRIDE_MAPS = ("inputs", "outputs", "settings", "tags", "properties", "environment_variables")


def now() -> dt.datetime:
    """The scheduler's clock: UTC now, shifted by AMLOCAL_CLOCK_OFFSET_S (a test clock)."""
    offset = float(os.environ.get("AMLOCAL_CLOCK_OFFSET_S") or 0)
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat()


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"{where}: name {name!r} must be 1-255 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def get(ws: Workspace, name: str) -> dict[str, Any]:
    return ws.store.require(KIND, name, f"schedule '{name}' was not found in workspace {ws.home}")


def show(record: dict[str, Any]) -> dict[str, Any]:
    """The `az ml schedule show` shape: the YAML's fields plus is_enabled and state."""
    return public(record)


def _job_overrides(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The keys beside `job:` as azure-ai-ml params_override entries (dotted keys)."""
    out: list[dict[str, Any]] = []
    for key, value in spec.items():
        if key in ("job", "type", "$schema"):
            continue
        if key in _OVERRIDE_MAPS and isinstance(value, dict):
            out.extend({f"{key}.{k}": v} for k, v in value.items())
        else:
            out.append({key: value})
    return out


def _job_action(ws: Workspace, path: Path, raw: Any) -> dict[str, Any]:
    from amlocal.jobs import plan

    if isinstance(raw, dict):
        ref, overrides = raw.get("job"), _job_overrides(raw)
    else:
        ref, overrides = raw, []
    if not isinstance(ref, str) or not ref:
        raise InvalidInput(
            f"{path}: create_job: expected a job file, azureml:<job> or {{job: ...}}"
        )
    if ref.startswith("azureml:"):
        job = ref.removeprefix("azureml:").split("/")[-1]
        if ws.store.get("job", job) is None:
            raise NotFound(f"{path}: create_job: job '{job}' was not found in {ws.home}")
        return {"type": "job_ref", "job": job, "overrides": overrides}
    target = Path(ref)
    target = (target if target.is_absolute() else path.parent / target).resolve()
    if not target.is_file():
        raise InvalidInput(f"{path}: create_job: {target} not found")
    # a broken job fails `create`, not the 02:00 firing (checked with now as trigger time)
    plan.load_plan(ws, target, expressions.resolve(overrides, now()))
    return {"type": "job_file", "path": str(target), "overrides": overrides}


def load(
    ws: Workspace, path: Path, overrides: list[dict[str, Any]], name: str | None = None
) -> dict[str, Any]:
    """The record for a schedule YAML (not stored): validated by azure-ai-ml, action resolved."""

    from amlocal import loader

    entity = loader.load(KIND, path, overrides)
    if name:
        entity.name = name
    loader.validate(entity, path)
    check_name(entity.name, str(path))
    spec = entity._to_dict()
    raw = yamlsafe.load_file(path) or {}
    for o in overrides:  # --set create_job=... must reach the action too
        raw.update({k: v for k, v in o.items() if "." not in k})
    created = now()
    try:
        Trigger(spec["trigger"], created)  # time zone, expression and dates are checked here
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None
    if "create_monitor" in spec:
        from amlocal.monitoring import definition as monitor

        action = monitor.action(ws, path, spec["create_monitor"])
    else:
        action = _job_action(ws, path, raw.get("create_job"))
    record = {k: v for k, v in spec.items() if k != "create_job"}
    if "create_job" in spec:  # show what will run, as az ml does (the resolved job)
        record["create_job"] = raw.get("create_job")
    record.update(
        is_enabled=True,
        provisioning_state="Succeeded",
        id=ws.arm_id(f"schedules/{entity.name}"),
        _action=action,
        _source=str(path.resolve()),
        _created=iso(created),
        _baseline=iso(created),  # nothing before creation (or enable) fires
    )
    return record


def trigger_of(record: dict[str, Any]) -> Trigger:
    return Trigger(record["trigger"], dt.datetime.fromisoformat(record["_created"]))


def due(record: dict[str, Any], at: dt.datetime) -> dt.datetime | None:
    """The firing due at `at`: the latest fire time since the last firing (or since the
    schedule was created or enabled), so missed firings collapse into one catch-up run."""
    after = dt.datetime.fromisoformat(record["_baseline"])
    if record.get("_last_fired"):
        after = max(after, dt.datetime.fromisoformat(record["_last_fired"]))
    return trigger_of(record).latest_due(after, at)


def claim(ws: Workspace, name: str, due: dt.datetime) -> bool:
    """Record `due` as fired, atomically, if no firing at or after it was recorded yet."""
    won = False

    def mark(r: dict[str, Any]) -> None:
        nonlocal won
        last = r.get("_last_fired")
        if r.get("is_enabled") and (last is None or dt.datetime.fromisoformat(last) < due):
            r["_last_fired"] = iso(due)
            won = True

    ws.store.update(KIND, name, mark)
    return won


def fire(ws: Workspace, record: dict[str, Any], fire_time: dt.datetime | None) -> dict[str, Any]:
    """Submit the schedule's job now; returns the job record (an ordinary job)."""
    from amlocal.jobs import runner

    action = record["_action"]
    props = {PROP_NAME: record["name"]}
    if fire_time is not None:
        props[PROP_TIME] = iso(fire_time)
    if action["type"] == "monitor":
        from amlocal.monitoring import run as monitor_run

        job_plan = monitor_run.plan(ws, record, props.get(PROP_TIME))
        props[monitor_run.PROP_MONITOR] = record["name"]
    else:
        job_plan = _plan(ws, action, fire_time or now())
    job = runner.submit(ws, job_plan)
    ws.store.update("job", job["name"], lambda r: r.setdefault("properties", {}).update(props))
    runner.spawn_runner(ws, job["name"])
    return ws.store.get("job", job["name"]) or job


def _plan(ws: Workspace, action: dict[str, Any], fire_time: dt.datetime) -> Plan:
    from amlocal.jobs import plan

    overrides = expressions.resolve(action["overrides"], fire_time)
    if action["type"] == "job_file":
        return plan.load_plan(ws, Path(action["path"]), overrides)
    ref = ws.store.get("job", action["job"])
    if ref is None or "_plan" not in ref:
        raise NotFound(f"create_job: job '{action['job']}' no longer exists")
    if overrides:
        return plan.load_plan(ws, Path(ref["_plan"]["source"]), overrides)
    return copy.deepcopy(ref["_plan"])
