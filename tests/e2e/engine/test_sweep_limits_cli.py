"""Sweep features that tests/test_sweep_logic.py covers only as decisions, end to end through
the real engine in a throwaway AMLOCAL_HOME: bayesian sampling, median-stopping early
termination, `limits.trial_timeout` and `limits.timeout`. Trials are tiny scripts (one MLflow
metric each), so every test is a few seconds.

Timeouts: azure-ai-ml raises any timeout under 60 s to 60 s while loading the YAML (a service
quirk it works around), so through `job create` the shortest honest limit is a minute. The
first timeout test shows that rounding through the real loader; the other two submit the same
YAML through the engine's own functions (load_plan, submit, execute: what `job create
--stream` calls) in a subprocess, with the loaded limits lowered to 2 s. Only the rounding is
bypassed; the runner, the trial processes and their cancellation are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import ENV_YML, Project

from tests.batch_support import assert_no_processes

BAYES_PY = """\
import argparse
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--q", type=float); p.add_argument("--k")
a = p.parse_args()
# A bowl with its minimum at x=0.3, q=2, k=b: the optimizer has something to find.
loss = (a.x - 0.3) ** 2 + 0.1 * (a.q - 2) ** 2 + {"a": 0.5, "b": 0.0, "c": 0.25}[a.k]
mlflow.log_metric("loss", loss)
"""

BAYES_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: sweep-bayes
# optuna TPE through ask/tell; choice, uniform and quniform are what bayesian accepts.
sampling_algorithm: bayesian
search_space:
  x: {type: uniform, min_value: -1, max_value: 1}
  q: {type: quniform, min_value: 0, max_value: 4, q: 1}
  k: {type: choice, values: [a, b, c]}
objective: {goal: minimize, primary_metric: loss}
limits: {max_total_trials: 4, max_concurrent_trials: 2}
trial:
  code: ./src
  command: >-
    python bayes.py --x ${{search_space.x}} --q ${{search_space.q}} --k ${{search_space.k}}
  environment: azureml:testenv@latest
"""

MEDIAN_PY = """\
import argparse, time
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--level", type=float)
a = p.parse_args()
for step in range(3):
    mlflow.log_metric("acc", a.level, step=step)
# A poor trial keeps going (one interval every 0.3 s) until the policy stops it; without
# early termination this test would run into pytest's timeout instead of passing.
step = 3
while a.level < 0.5:
    mlflow.log_metric("acc", a.level, step=step)
    step += 1
    time.sleep(0.3)
"""

MEDIAN_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: sweep-median
# grid: the two good trials run first (two at a time), the poor one after them.
sampling_algorithm: grid
search_space:
  level: {type: choice, values: [0.9, 0.8, 0.2]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 3, max_concurrent_trials: 2}
early_termination:
  type: median_stopping
  evaluation_interval: 1
  # from the 2nd logged value on: a single first value says little
  delay_evaluation: 2
trial:
  code: ./src
  command: python median.py --level ${{search_space.level}}
  environment: azureml:testenv@latest
"""

HANG_PY = """\
import argparse, time
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--name")
p.parse_args()
mlflow.log_metric("acc", 0.5)  # a value before hanging: a cancelled trial is never best
time.sleep(3600)
"""

HANG_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: sweep-limits
sampling_algorithm: grid
search_space:
  name: {type: choice, values: [{values}]}
objective: {goal: maximize, primary_metric: acc}
limits: {limits}
trial:
  code: ./src
  command: python hang.py --name ${{search_space.name}}
  environment: azureml:testenv@latest
"""

# Load and submit a YAML as `job create --stream` does, with the loaded limits replaced.
DRIVER = """\
import json, sys
from pathlib import Path
from amlocal.jobs import plan, runner
from amlocal.workspace import Workspace
ws = Workspace()
job = plan.load_plan(ws, Path(sys.argv[1]), [])
for holder in (job["spec"], job["step"], job["step"]["spec"]):
    holder["limits"] = {**(holder.get("limits") or {}), **json.loads(sys.argv[2])}
name = runner.submit(ws, job)["name"]
print(name, flush=True)
runner.execute(ws, name)
"""


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    """A throwaway workspace with the environment the trials name."""
    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    p.run("environment", "create", "-f", "env.yml", "-o", "none")
    return p


def _sweep(project: Project, path: str, **limits: int) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, path, json.dumps(limits)],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.stdout.strip(), r.stderr
    return project.json("job", "show", "-n", r.stdout.split()[0])


def _hang_project(project: Project, values: str, limits: str) -> None:
    project.write("src/hang.py", HANG_PY)
    yml = HANG_YML.replace("{values}", values).replace("{limits}", limits)
    project.write("sweep.yml", yml)


def test_bayesian_trials_in_bounds_best_first(project: Project) -> None:
    project.write("src/bayes.py", BAYES_PY)
    project.write("sweep.yml", BAYES_YML)
    job, r = project.create("sweep.yml")
    assert r.returncode == 0, r.stderr
    shown = project.json("job", "show", "-n", job["name"])
    assert shown["status"] == "Completed"
    trials = shown["trials"]
    assert len(trials) == 4 and {t["status"] for t in trials} == {"Completed"}
    for t in trials:
        p = t["parameters"]
        assert -1 <= p["x"] <= 1 and p["k"] in ("a", "b", "c")
        assert p["q"] in (0.0, 1.0, 2.0, 3.0, 4.0)
    losses = [t["loss"] for t in trials]
    assert losses == sorted(losses)  # minimize: best first
    assert shown["best_trial"] == trials[0]["name"]
    assert float(shown["properties"]["score"]) == losses[0]
    assert len({t["parameters"]["x"] for t in trials}) == 4  # sampled, not repeated


def test_bayesian_with_early_termination_is_rejected(project: Project) -> None:
    project.write("src/bayes.py", BAYES_PY)
    yml = BAYES_YML + "early_termination: {type: median_stopping}\n"
    project.write("sweep.yml", yml)
    _, r = project.create("sweep.yml", check=False)
    assert r.returncode != 0
    assert "early_termination is not supported with bayesian" in r.stderr


def test_median_stopping_stops_the_poor_trial_only(project: Project) -> None:
    project.write("src/median.py", MEDIAN_PY)
    project.write("sweep.yml", MEDIAN_YML)
    job, r = project.create("sweep.yml")
    assert r.returncode == 0, r.stderr
    shown = project.json("job", "show", "-n", job["name"])
    assert shown["status"] == "Completed"
    trials = shown["trials"]
    assert [t["parameters"]["level"] for t in trials] == [0.9, 0.8, 0.2]
    assert [t["status"] for t in trials] == ["Completed", "Completed", "Canceled"]
    assert [t["early_terminated"] for t in trials] == [False, False, True]
    stopped = project.json("job", "show", "-n", trials[2]["name"])
    assert "median_stopping" in stopped["error"]["message"]
    assert shown["best_trial"] == trials[0]["name"]
    assert_no_processes(project.home)


def test_azure_ai_ml_raises_sub_minute_timeouts_to_60s(project: Project) -> None:
    """What `job create` hands the engine: the loader's values, so 60 s, not 2 s."""
    from amlocal.jobs import plan
    from amlocal.workspace import Workspace

    _hang_project(project, "a", "{max_total_trials: 1, timeout: 2, trial_timeout: 2}")
    loaded = plan.load_plan(Workspace(project.home), project.root / "sweep.yml", [])
    limits = loaded["step"]["spec"]["limits"]
    assert (limits["timeout"], limits["trial_timeout"]) == (60, 60)


def test_trial_timeout_cancels_the_trial_and_its_processes(project: Project) -> None:
    _hang_project(project, "a", "{max_total_trials: 1, trial_timeout: 60}")
    shown = _sweep(project, "sweep.yml", trial_timeout=2)
    (trial,) = shown["trials"]
    assert trial["status"] == "Canceled" and not trial["early_terminated"]
    record = project.json("job", "show", "-n", trial["name"])
    assert "limits.trial_timeout (2 s)" in record["error"]["message"]
    # the cancelled trial is not the best, whatever it logged: nothing completed
    assert shown["status"] == "Failed" and shown["best_trial"] is None
    assert "no trial completed" in shown["error"]["message"]
    assert_no_processes(project.home)


def test_timeout_cancels_running_trials_and_starts_no_more(project: Project) -> None:
    _hang_project(
        project, "a, b, c", "{max_total_trials: 3, max_concurrent_trials: 2, timeout: 60}"
    )
    shown = _sweep(project, "sweep.yml", timeout=2)
    trials = shown["trials"]
    # the third trial never starts: both slots hang until the sweep's deadline
    assert 1 <= len(trials) == min(2, os.cpu_count() or 1)
    assert {t["status"] for t in trials} == {"Canceled"}
    assert shown["properties"]["azureml.sweepStopReason"] == "limits.timeout (2 s) reached"
    assert shown["status"] == "Failed"
    children = project.json("job", "list", "--parent-job-name", shown["name"])
    assert sorted(c["name"] for c in children) == sorted(t["name"] for t in trials)
    assert_no_processes(project.home)
