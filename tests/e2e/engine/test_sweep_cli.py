"""Sweep jobs end to end through the real CLI: a standalone `type: sweep` job and a sweep step
inside a pipeline, in a throwaway AMLOCAL_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import ENV_YML, Project

TRIAL_PY = """\
import argparse, pathlib, time
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--quality"); p.add_argument("--scale", type=float, default=1.0)
p.add_argument("--out"); p.add_argument("--data")
a = p.parse_args()
score = {"good": 0.9, "ok": 0.85, "bad": 0.1}[a.quality] * a.scale
mlflow.log_metric("acc", score)
if a.quality == "bad":
    time.sleep(300)  # only early termination ends this trial in reasonable time
if a.data:
    assert pathlib.Path(a.data, "in.txt").exists()
pathlib.Path(a.out, "model.txt").write_text(a.quality)
"""

SWEEP_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: sweep-test
sampling_algorithm: grid
search_space:
  quality: {type: choice, values: [good, bad, ok]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 10, max_concurrent_trials: 2}
early_termination: {type: bandit, slack_factor: 0.1}
inputs:
  scale: 1.0
outputs:
  model: {type: uri_folder}
trial:
  code: ./src
  command: >-
    python trial.py --quality ${{search_space.quality}} --scale ${{inputs.scale}}
    --out ${{outputs.model}}
  environment: azureml:testenv@latest
"""

TRIAL_COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: trial
type: command
version: 1
code: ./src
environment: azureml:testenv@latest
inputs:
  quality: {type: string}
  data: {type: uri_folder}
outputs:
  model: {type: uri_folder}
command: python trial.py --quality ${{inputs.quality}} --data ${{inputs.data}} --out ${{outputs.model}}
"""

READ_COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: reader
type: command
version: 1
code: ./src
environment: azureml:testenv@latest
inputs:
  model: {type: uri_folder}
outputs:
  copy: {type: uri_folder}
command: cp ${{inputs.model}}/model.txt ${{outputs.copy}}/model.txt
"""

PIPELINE_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: sweep-test
settings:
  default_compute: azureml:cpu-cluster
inputs:
  data: {type: uri_folder, path: ./data}
jobs:
  tune:
    type: sweep
    trial: ./trial.yml
    inputs:
      data: ${{parent.inputs.data}}
    sampling_algorithm: {type: random, seed: 1}
    search_space:
      quality: {type: choice, values: [ok, good]}
    objective: {goal: minimize, primary_metric: acc}
    limits: {max_total_trials: 4, max_concurrent_trials: 2}
    outputs:
      model: {type: uri_folder}
  read:
    type: command
    component: ./read.yml
    inputs:
      model: ${{parent.jobs.tune.outputs.model}}
"""


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    p.write("src/trial.py", TRIAL_PY)
    p.run("environment", "create", "-f", "env.yml")
    return p


def _mlflow_runs(project: Project, experiment: str) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project.home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    # Keyed by job name: runs are named for people (a trial by its parameters, see
    # run_names), and carry the job name as the `azureml.jobName` tag.
    return {r.data.tags["azureml.jobName"]: r for r in client.search_runs([exp.experiment_id])}


def test_standalone_sweep_grid_bandit_best_first(project: Project) -> None:
    project.write("sweep.yml", SWEEP_YML)
    job, r = project.create("sweep.yml")
    assert r.returncode == 0, r.stderr
    name = job["name"]
    shown = project.json("job", "show", "-n", name)
    assert shown["status"] == "Completed" and shown["type"] == "sweep"
    trials = shown["trials"]
    # grid: each value exactly once; best first by the goal (maximize)
    assert [t["parameters"]["quality"] for t in trials] == ["good", "ok", "bad"]
    assert [t["acc"] for t in trials] == [0.9, 0.85, 0.1]
    bad = trials[2]
    assert bad["status"] == "Canceled" and bad["early_terminated"] is True
    assert trials[0]["status"] == trials[1]["status"] == "Completed"
    assert shown["best_trial"] == trials[0]["name"]
    assert shown["properties"]["best_child_run_id"] == trials[0]["name"]
    # the best trial's outputs are the sweep's outputs
    out = Path(shown["outputs"]["model"]["local_path"])
    assert (out / "model.txt").read_text() == "good"
    # trials are job records whose parent is the sweep
    children = project.json("job", "list", "--parent-job-name", name)
    assert sorted(c["name"] for c in children) == sorted(t["name"] for t in trials)
    assert all(c["parent_job_name"] == name for c in children)
    bad_rec = project.json("job", "show", "-n", bad["name"])
    assert "bandit" in bad_rec["error"]["message"]
    # trials are MLflow child runs of the sweep's run; the comparison plot is on the sweep run
    runs = _mlflow_runs(project, "sweep-test")
    sweep_run = runs[name]
    for t in trials:
        child = runs[t["name"]]
        assert child.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
        assert json.loads(child.data.tags["hyperparameters"]) == t["parameters"]
    assert runs[bad["name"]].info.status == "KILLED"
    assert sweep_run.data.metrics["acc"] == 0.9
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project.home / 'mlflow.db'}")
    assert "sweep_comparison.png" in {a.path for a in client.list_artifacts(sweep_run.info.run_id)}


def test_sweep_step_in_pipeline_feeds_best_output_downstream(project: Project) -> None:
    project.write("data/in.txt", "x\n")
    project.write("trial.yml", TRIAL_COMPONENT)
    project.write("read.yml", READ_COMPONENT)
    project.write("pipe.yml", PIPELINE_YML)
    job, r = project.create("pipe.yml")
    assert r.returncode == 0, r.stderr
    steps = project.steps(job["name"])
    assert steps["tune"]["status"] == "Completed" and steps["read"]["status"] == "Completed"
    tune = project.json("job", "show", "-n", steps["tune"]["name"])
    # minimize: "ok" (0.85) beats "good" (0.9); the search space binds to the trial's input
    assert tune["trials"][0]["parameters"] == {"quality": "ok"}
    read = project.json("job", "show", "-n", steps["read"]["name"])
    local = Path(read["outputs"]["copy"]["local_path"])
    assert (local / "model.txt").read_text() == "ok"
