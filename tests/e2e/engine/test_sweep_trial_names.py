"""Issue 31, items 5 and 4: a sweep trial's MLflow run is named by the parameters its family
uses (those it logged), not by every parameter of the search space's product; the sweep's
summary line names its best trial so, without the log's timestamp."""

from __future__ import annotations

from pathlib import Path

from cli_support import ENV_YML, Project

TRIAL_PY = """\
import argparse
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--family"); p.add_argument("--depth", type=int); p.add_argument("--C", type=float)
a = p.parse_args()
used = {"family": a.family, **({"depth": a.depth} if a.family == "tree" else {"C": a.C})}
mlflow.log_params(used)
mlflow.log_metric("acc", 0.9 if a.family == "tree" else 0.8)
"""

SWEEP_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: names
sampling_algorithm: grid
search_space:
  family: {type: choice, values: [tree, linear]}
  depth: {type: choice, values: [3]}
  C: {type: choice, values: [0.5]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 2, max_concurrent_trials: 2}
trial:
  code: ./src
  command: >-
    python trial.py --family ${{search_space.family}} --depth ${{search_space.depth}}
    --C ${{search_space.C}}
  environment: azureml:testenv@latest
"""


def test_trial_runs_are_named_by_the_parameters_they_used(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    p.write("src/trial.py", TRIAL_PY)
    p.write("sweep.yml", SWEEP_YML)
    p.run("environment", "create", "-f", "env.yml")
    job, r = p.create("sweep.yml")
    assert job["status"] == "Completed", r.stderr
    client = MlflowClient(f"sqlite:///{p.home / 'mlflow.db'}")
    names = set()
    for trial in p.json("job", "list", "--parent-job-name", job["name"]):
        run = client.get_run(trial["properties"]["mlflow.runId"])
        names.add(run.info.run_name)
        assert trial["parameters"].keys() == {"family", "depth", "C"}  # the job keeps all
    assert names == {"tree depth=3", "linear C=0.5"}
    # The sweep's row in the `--stream` table names its best trial the same way (item 4).
    from amlocal.jobs import stream
    from amlocal.workspace import Workspace

    row = stream.outcome(Workspace(p.home).store.get("job", job["name"]) or {})
    assert row.startswith(f"sweep {job['name']}: Completed; best tree depth=3 (acc=0.9, "), row
