"""`amlocal schedule`: triggers, the scheduler daemon (fires, exits, survives restarts without
double-firing) and schedule YAML validated by azure-ai-ml."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from cli_support import Project, wait_until

REPO = Path(__file__).resolve().parents[3]

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo fired-by-schedule
environment: azureml:testenv@latest
"""

SCHEDULE = """\
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: {name}
trigger:
  type: cron
  expression: "* * * * *"
  time_zone: {tz}
create_job: ./job.yml
"""

ENV_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: testenv
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
"""


# -- triggers (no processes) -------------------------------------------------------------
def test_cron_honours_time_zone_across_dst() -> None:
    from amlocal.schedules.triggers import Trigger

    t0 = dt.datetime(2026, 3, 7, 12, tzinfo=dt.UTC)
    trig = Trigger(
        {"type": "cron", "expression": "0 2 * * *", "time_zone": "Pacific Standard Time"}, t0
    )
    # 02:00 Pacific is 10:00 UTC in winter (PST) and 09:00 UTC after the March DST change.
    assert trig.next_after(t0) == dt.datetime(2026, 3, 8, 10, tzinfo=dt.UTC)
    assert trig.next_after(dt.datetime(2026, 3, 9, tzinfo=dt.UTC)) == dt.datetime(
        2026, 3, 9, 9, tzinfo=dt.UTC
    )


def test_recurrence_and_catch_up_collapses_missed_firings() -> None:
    from amlocal.schedules.triggers import Trigger

    t0 = dt.datetime(2026, 3, 7, 12, tzinfo=dt.UTC)
    spec = {
        "type": "recurrence",
        "frequency": "day",
        "interval": 1,
        "schedule": {"hours": 3, "minutes": 0},
    }
    trig = Trigger(spec, t0)
    assert trig.next_after(t0) == dt.datetime(2026, 3, 8, 3, tzinfo=dt.UTC)
    # Asleep for three days: one catch-up run, the latest missed one.
    assert trig.latest_due(t0, dt.datetime(2026, 3, 10, 5, tzinfo=dt.UTC)) == dt.datetime(
        2026, 3, 10, 3, tzinfo=dt.UTC
    )
    weekly = Trigger(
        {
            "type": "recurrence",
            "frequency": "week",
            "interval": 1,
            "schedule": {"week_days": ["monday"], "hours": [9], "minutes": [30]},
            "time_zone": "W. Europe Standard Time",
        },
        t0,
    )
    assert weekly.next_after(t0) == dt.datetime(2026, 3, 9, 8, 30, tzinfo=dt.UTC)
    ended = Trigger({**spec, "end_time": "2026-03-08T00:00:00"}, t0)
    assert ended.next_after(t0) is None


def test_claim_is_once_per_firing(tmp_path: Path) -> None:
    from amlocal.schedules import definition as sd
    from amlocal.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.store.put(sd.KIND, "s", {"name": "s", "is_enabled": True})
    due = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    assert sd.claim(ws, "s", due) is True
    assert sd.claim(ws, "s", due) is False  # a restarted daemon sees the claim
    assert sd.claim(ws, "s", due + dt.timedelta(days=1)) is True


# -- the CLI and the daemon ----------------------------------------------------------------
def _project(tmp_path: Path, offset: float) -> Project:
    p = Project(tmp_path)
    p.env["AMLOCAL_CLOCK_OFFSET_S"] = str(offset)
    p.write("env.yml", ENV_YML)
    p.write("job.yml", JOB)
    p.run("environment", "create", "-f", "env.yml")
    return p


def _offset_to_just_before_a_minute(lead: float = 8.0) -> float:
    """A test clock `lead` seconds before the next minute boundary (so `* * * * *` fires soon)."""
    now = dt.datetime.now(dt.UTC)
    return (60 - lead) - (now.second + now.microsecond / 1e6)


def _fired(p: Project, name: str) -> list[dict]:
    jobs = p.json("job", "list")
    return [j for j in jobs if (j.get("properties") or {}).get("azureml.scheduleName") == name]


def _daemon_pid(p: Project) -> int | None:
    try:
        return json.loads((p.home / "schedules" / "daemon.json").read_text())["pid"]
    except (OSError, ValueError):
        return None


def _wait(cond, timeout: float = 60.0):  # noqa: ANN001
    return wait_until(cond, timeout, every=0.25)


def test_cron_schedule_fires_job_completes_and_restart_does_not_double_fire(
    tmp_path: Path,
) -> None:
    p = _project(tmp_path, 0)
    p.env["AMLOCAL_CLOCK_OFFSET_S"] = str(_offset_to_just_before_a_minute(lead=8.0))
    p.write("s.yml", SCHEDULE.format(name="every-minute", tz="UTC"))
    shown = p.json("schedule", "create", "-f", "s.yml")
    assert shown["is_enabled"] is True and shown["trigger"]["expression"] == "* * * * *"
    pid = _wait(lambda: _daemon_pid(p), 15)
    jobs = _wait(lambda: _fired(p, "every-minute"), 40)
    assert len(jobs) == 1
    fire_time = jobs[0]["properties"]["azureml.scheduleFireTime"]
    assert fire_time.endswith(":00+00:00")
    # Kill the daemon the hard way and start it again (any schedule command does): the
    # firing it already submitted is not submitted again.
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not Path(f"/proc/{pid}").exists(), 10)
    p.run("schedule", "list")
    new_pid = _wait(lambda: _daemon_pid(p) != pid and _daemon_pid(p), 15)
    assert new_pid != pid
    time.sleep(3)
    again = [
        j
        for j in _fired(p, "every-minute")
        if j["properties"]["azureml.scheduleFireTime"] == fire_time
    ]
    assert len(again) == 1
    done = _wait(
        lambda: p.json("job", "show", "-n", jobs[0]["name"])["status"] in ("Completed", "Failed"),
        60,
    )
    assert done
    assert p.json("job", "show", "-n", jobs[0]["name"])["status"] == "Completed"
    # Disabled: the daemon exits on its own; delete works once disabled.
    p.run("schedule", "disable", "-n", "every-minute")
    _wait(lambda: _daemon_pid(p) is None, 15)
    p.run("schedule", "delete", "-n", "every-minute")
    assert p.run("schedule", "show", "-n", "every-minute", check=False).returncode == 3


def test_daemon_exits_when_its_workspace_is_deleted(tmp_path: Path) -> None:
    """`make clean` or a removed tmp dir takes the schedules with it: the daemon must not
    keep firing from its open handle on the deleted store."""
    import psutil

    p = _project(tmp_path, 0)
    p.write("s.yml", SCHEDULE.format(name="nightly", tz="UTC").replace("* * * * *", "0 2 * * *"))
    p.run("schedule", "create", "-f", "s.yml")
    pid = _wait(lambda: _daemon_pid(p), 15)
    shutil.rmtree(p.home)
    _wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", 15)


def test_trigger_runs_now_and_bad_input_is_rejected(tmp_path: Path) -> None:
    p = _project(tmp_path, 0)
    p.write(
        "s.yml",
        SCHEDULE.format(name="nightly", tz="Pacific Standard Time").replace(
            "* * * * *", "0 2 * * *"
        ),
    )
    p.run("schedule", "create", "-f", "s.yml")
    job = p.json("schedule", "trigger", "-n", "nightly")
    assert job["properties"]["azureml.scheduleName"] == "nightly"
    assert any(j["name"] == job["name"] for j in p.json("job", "list"))
    r = p.run("schedule", "delete", "-n", "nightly", check=False)
    assert r.returncode == 2 and "disable" in r.stderr
    p.run("schedule", "disable", "-n", "nightly")
    assert p.json("schedule", "list") == []
    assert [s["name"] for s in p.json("schedule", "list", "--list-view-type", "all")] == ["nightly"]

    p.write("bad.yml", SCHEDULE.format(name="bad", tz="UTC").replace("* * * * *", "61 * * * *"))
    r = p.run("schedule", "create", "-f", "bad.yml", check=False)
    assert r.returncode == 2 and "bad.yml" in r.stderr
    p.write(
        "nojob.yml", SCHEDULE.format(name="nojob", tz="UTC").replace("./job.yml", "./missing.yml")
    )
    r = p.run("schedule", "create", "-f", "nojob.yml", check=False)
    assert r.returncode == 2 and "missing.yml" in r.stderr
    p.write(
        "ref.yml", SCHEDULE.format(name="ref", tz="UTC").replace("./job.yml", "azureml:no_such_job")
    )
    r = p.run("schedule", "create", "-f", "ref.yml", check=False)
    assert r.returncode == 3 and "no_such_job" in r.stderr
    p.write("tz.yml", SCHEDULE.format(name="tz", tz="Mars Standard Time"))
    r = p.run("schedule", "create", "-f", "tz.yml", check=False)
    assert r.returncode == 2


SCHEDULE_FILES = sorted((REPO / "schedules").glob("*.yml")) + sorted(
    (REPO / "tests" / "fixtures" / "schedules").glob("*.yml")
)


@pytest.mark.parametrize("path", SCHEDULE_FILES, ids=lambda p: p.name)
def test_schedule_yaml_validates_with_azure_ai_ml(path: Path) -> None:
    from amlocal.validate import check_with_azure_ai_ml, read_docs
    from amlocal.yamldocs import Doc

    docs, _, problems = read_docs([path])
    assert not problems and len(docs) == 1 and docs[0].kind == "schedule"
    assert check_with_azure_ai_ml(docs[0]) == []
    assert isinstance(docs[0], Doc)
