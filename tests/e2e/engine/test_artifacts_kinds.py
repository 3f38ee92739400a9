"""The default `artifacts` output of sweep trials, sweep jobs and parallel steps (issue 18), end
to end through the CLI: what the job wrote to ./outputs and ./logs and its log, bound
downstream as `${{parent.jobs.<x>.outputs.artifacts}}` and addressed by
`azureml://jobs/<job>/outputs/artifacts/paths/<path>`. A sweep's `artifacts` is its best
trial's (`az ml job download` fetches the best trial's default and named outputs)."""

from __future__ import annotations

from pathlib import Path

from cli_support import Project

HEAD = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: artifacts-kinds
settings:
  default_compute: azureml:cpu-cluster
"""

TRIAL_PY = """\
import argparse, pathlib
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--q")
a = p.parse_args()
pathlib.Path("outputs/model").mkdir(parents=True, exist_ok=True)
pathlib.Path("outputs/model/q.txt").write_text(a.q)
pathlib.Path("logs/trial.log").write_text("trial " + a.q)
mlflow.log_metric("acc", {"lo": 0.2, "hi": 0.8}[a.q])
print("trial done", a.q)
"""

SWEEP = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: artifacts-kinds
sampling_algorithm: grid
search_space:
  q: {type: choice, values: [lo, hi]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 2, max_concurrent_trials: 2}
trial:
  code: ./src
  command: python trial.py --q ${{search_space.q}}
  environment: azureml:testenv@latest
"""


def _model(project: Project, name: str, uri: str) -> dict[str, str]:
    project.write(
        f"{name}.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
        f"name: {name}\ntype: custom_model\npath: {uri}\n",
    )
    model: dict[str, str] = project.json("model", "create", "-f", f"{name}.yml")
    return model


def test_sweep_trial_artifacts_addressed_by_uri_the_sweeps_are_the_best_trials(
    project: Project,
) -> None:
    # (azure-ai-ml binds ${{parent.jobs.<sweep>.outputs.x}} only to outputs its trial declares)
    project.write("src/trial.py", TRIAL_PY)
    project.write("sweep.yml", SWEEP)
    sweep, r = project.create("sweep.yml")
    assert sweep["status"] == "Completed", r.stderr
    trials = {t["parameters"]["q"]: t["name"] for t in sweep["trials"]}
    assert sweep["best_trial"] == trials["hi"]
    for trial in project.json("job", "list", "--parent-job-name", sweep["name"]):
        uri = f"azureml://jobs/{trial['name']}/outputs/artifacts"
        assert trial["outputs"]["artifacts"]["path"] == uri  # every trial has its own
    uri = f"azureml://jobs/{trials['lo']}/outputs/artifacts/paths/outputs/model"
    assert (Path(_model(project, "lo", uri)["path"]) / "q.txt").read_text() == "lo"
    # the sweep's own artifacts output is its best trial's
    uri = f"azureml://jobs/{sweep['name']}/outputs/artifacts/paths/"
    art = Path(_model(project, "best", uri)["path"])
    assert (art / "outputs" / "model" / "q.txt").read_text() == "hi"
    assert (art / "logs" / "trial.log").read_text() == "trial hi"
    assert "trial done hi" in (art / "user_logs" / "std_log.txt").read_text()


SCORE_PY = """\
import os, pathlib

def init():
    pathlib.Path("outputs").mkdir(exist_ok=True)
    pathlib.Path("outputs/init.txt").write_text("initialised")

def run(mini_batch):
    print("scoring", len(mini_batch))
    return [f"{os.path.basename(f)},1" for f in mini_batch]
"""

PARALLEL_PIPE = (
    HEAD
    + """\
inputs:
  data: {type: uri_folder, path: ./data}
jobs:
  score:
    type: parallel
    inputs:
      data: ${{parent.inputs.data}}
    outputs:
      scored: {type: uri_folder}
      artifacts:
    input_data: ${{inputs.data}}
    mini_batch_size: "1"
    task:
      type: run_function
      code: ./score
      entry_script: score.py
      append_row_to: ${{outputs.scored}}
      environment: azureml:testenv@latest
  check:
    type: command
    command: >-
      grep -qx initialised ${{inputs.art}}/outputs/init.txt &&
      test -f ${{inputs.art}}/logs/job_progress_overview.txt &&
      test -f ${{inputs.art}}/user_logs/std_log.txt
    environment: azureml:testenv@latest
    inputs:
      art: ${{parent.jobs.score.outputs.artifacts}}
"""
)


def test_parallel_step_artifacts_bound_downstream(project: Project) -> None:
    project.write("score/score.py", SCORE_PY)
    for i in range(2):
        project.write(f"data/{i}.txt", f"{i}\n")
    project.write("pipe.yml", PARALLEL_PIPE)
    job, r = project.create("pipe.yml")
    assert job["status"] == "Completed", r.stderr
    score = project.steps(job["name"])["score"]
    assert (
        score["outputs"]["artifacts"]["path"] == f"azureml://jobs/{score['name']}/outputs/artifacts"
    )
