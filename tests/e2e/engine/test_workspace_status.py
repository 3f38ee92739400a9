"""Issue 31, item 3: `amlocal workspace status` lists what the workspace runs (an online
endpoint's daemon and instance, the scheduler daemon, a detached job's runner) with its memory
and how to stop it; `make stop` stops all of it under AMLOCAL_HOME, leaving the endpoint and
schedule defined; `make clean` stops them too. Real processes throughout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
from cli_support import Project, wait_until

REPO = Path(__file__).resolve().parents[3]
VENV = REPO / ".venv"

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: st-online
auth_mode: key
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: st-online
model:
  path: ./model
code_configuration:
  code: ./code
  scoring_script: score.py
environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
instance_type: Standard_DS3_v2
instance_count: 1
"""
SCORE = """\
def init():
    pass


def run(raw):
    return [1]
"""
SCHEDULE = """\
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: nightly
trigger:
  type: cron
  expression: "0 2 * * *"
create_job: ./job.yml
"""
JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo started && sleep 600
environment: azureml:testenv@latest
"""
ENV_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: testenv
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
"""


def _wait(cond, timeout: float = 60.0):  # noqa: ANN001
    return wait_until(cond, timeout, every=0.2)


def _tree(pid: int) -> list[int]:
    root = psutil.Process(pid)
    return [root.pid, *(c.pid for c in root.children(recursive=True))]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _make(p: Project, target: str) -> subprocess.CompletedProcess[str]:
    """The repository's Makefile, run from the project folder (its .venv, our workspace)."""
    return subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), f"VENV={VENV}", target],
        cwd=p.root,
        env=p.env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_status_lists_what_runs_and_make_stop_and_clean_stop_it(tmp_path: Path) -> None:
    p = Project(tmp_path)
    p.home = tmp_path / "elsewhere"  # AMLOCAL_HOME is not ./.amlocal: make must honour it
    p.env["AMLOCAL_HOME"] = str(p.home)
    p.write("endpoint.yml", ENDPOINT)
    p.write("blue.yml", DEPLOYMENT)
    p.write("code/score.py", SCORE)
    p.write("model/weights.txt", "1\n")
    p.write("schedule.yml", SCHEDULE)
    p.write("job.yml", JOB)
    p.write("env.yml", ENV_YML)
    started: list[int] = []
    try:
        assert p.json("workspace", "status") == []
        p.run("environment", "create", "-f", "env.yml")
        p.run("online-endpoint", "create", "-f", "endpoint.yml")
        p.run("online-deployment", "create", "-f", "blue.yml", "--all-traffic")
        p.run("schedule", "create", "-f", "schedule.yml")
        job = p.json("job", "create", "-f", "job.yml")
        _wait(lambda: p.json("job", "show", "-n", job["name"])["status"] == "Running")

        rows = {r["kind"]: r for r in p.json("workspace", "status")}
        assert set(rows) == {"online-endpoint", "scheduler", "job"}, rows
        for row in rows.values():
            started += _tree(row["pid"])
            assert row["memory_mb"] > 1 and row["processes"] >= 1 and row["stop"]
        ep = rows["online-endpoint"]
        assert ep["name"] == "st-online" and ep["instances"] == 1 and ep["collectors"] == 0
        assert ep["processes"] >= 2  # the front door and the model server instance
        assert rows["scheduler"]["name"] == "nightly"
        assert rows["job"]["name"] == job["name"]
        assert rows["job"]["stop"] == f"amlocal job cancel -n {job['name']}"
        table = p.run("workspace", "status", "-o", "table").stdout
        assert "st-online" in table and "Memory_mb" in table

        r = _make(p, "stop")
        assert r.returncode == 0, r.stderr
        assert all(_gone(pid) for pid in started), [q for q in started if not _gone(q)]
        assert p.json("workspace", "status") == []
        assert p.json("job", "show", "-n", job["name"])["status"] == "Canceled"
        # Stopped, not deleted: the endpoint and the schedule are still defined.
        assert p.json("online-endpoint", "show", "-n", "st-online")["name"] == "st-online"
        assert p.json("schedule", "show", "-n", "nightly")["is_enabled"] is True

        # `schedule show` started the scheduler again; `make clean` stops it (and the
        # endpoint), though the workspace it removes (./.amlocal) is not AMLOCAL_HOME.
        again = [r["pid"] for r in p.json("workspace", "status")]
        assert again, "the scheduler starts again when a schedule verb runs"
        started += again
        r = _make(p, "clean")
        assert r.returncode == 0, r.stderr
        assert all(_gone(pid) for pid in again)
        assert p.home.is_dir()
    finally:
        for pid in started:
            if not _gone(pid):
                psutil.Process(pid).kill()
