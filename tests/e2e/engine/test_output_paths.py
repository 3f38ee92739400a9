"""Nothing a job writes leaves the workspace, and no folder amlocal did not create is removed
(hardening II, item 1). An output `path` that is not a datastore path, or a datastore path
that climbs out of its datastore, is refused at `job create` with exit 2 and the key named,
before anything runs; so is an experiment name that would move MLflow's artifacts out. A
sweep copies its best trial over what its output folder already holds, never removing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Project

COMMAND_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo written > ${{{{outputs.out}}}}/f.txt
environment: azureml:testenv@latest
outputs:
  out:
    type: uri_folder
    path: {path}
"""

SWEEP_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: sweep-paths
sampling_algorithm: grid
search_space:
  q: {{type: choice, values: [1, 2]}}
objective: {{goal: maximize, primary_metric: acc}}
limits: {{max_total_trials: 2, max_concurrent_trials: 2}}
outputs:
  model:
    type: uri_folder
    path: {path}
trial:
  code: ./src
  command: python trial.py --q ${{{{search_space.q}}}} --out ${{{{outputs.model}}}}
  environment: azureml:testenv@latest
"""

TRIAL_PY = """\
import argparse, pathlib
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--q", type=int); p.add_argument("--out")
a = p.parse_args()
mlflow.log_metric("acc", a.q)
pathlib.Path(a.out, "model.txt").write_text(str(a.q))
"""


def _escapes(project: Project) -> list[tuple[str, Path]]:
    """(output path as written, where it would land) for each way out of the workspace."""
    outside = project.root / "outside"
    return [
        ("azureml://datastores/workspaceblobstore/paths/../../../outside", outside),
        ("azureml://datastores/workspaceblobstore/paths//tmp/amlocal-abs-escape", outside),
        (f"file://{outside}", outside),
        (str(outside), outside),
        ("../outside", project.root.parent / "outside"),
        (".", project.root),
    ]


@pytest.mark.parametrize("case", range(6))
def test_an_output_path_outside_the_workspace_is_refused_before_anything_runs(
    project: Project, case: int
) -> None:
    path, lands = _escapes(project)[case]
    project.write("job.yml", COMMAND_JOB.format(path=path))
    before = sorted(p.name for p in project.root.iterdir())
    r = project.run("job", "create", "-f", "job.yml", "--stream", check=False)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "outputs.out.path" in r.stderr, r.stderr
    assert not (lands / "f.txt").exists()
    assert not Path("/tmp/amlocal-abs-escape").exists()
    assert sorted(p.name for p in project.root.iterdir()) == before
    assert project.json("job", "list") == []  # refused before any record was written


def test_a_sweep_output_at_the_project_folder_is_refused_and_deletes_nothing(
    project: Project,
) -> None:
    project.write("src/trial.py", TRIAL_PY)
    project.write("job.yml", SWEEP_JOB.format(path="."))
    (project.root / "keep.txt").write_text("mine")
    r = project.run("job", "create", "-f", "job.yml", "--stream", check=False)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "outputs.model.path" in r.stderr
    assert (project.root / "keep.txt").read_text() == "mine"
    assert (project.root / "src" / "trial.py").exists()


def test_a_sweep_copies_its_best_trial_without_removing_what_the_folder_held(
    project: Project,
) -> None:
    """A datastore folder the user already had is written over, never removed (the sweep
    used to `rmtree` its output location before copying the best trial there)."""
    project.write("src/trial.py", TRIAL_PY)
    shared = project.home / "datastores" / "workspaceblobstore" / "shared"
    shared.mkdir(parents=True)
    (shared / "theirs.txt").write_text("not amlocal's")
    uri = "azureml://datastores/workspaceblobstore/paths/shared"
    project.write("job.yml", SWEEP_JOB.format(path=uri))
    job, _ = project.create("job.yml")
    assert job["status"] == "Completed", job
    assert (shared / "model.txt").read_text() == "2"  # the best trial's
    assert (shared / "theirs.txt").read_text() == "not amlocal's"


def test_an_experiment_name_that_leaves_the_workspace_is_refused(project: Project) -> None:
    uri = "azureml://datastores/workspaceblobstore/paths/ok/${{name}}"
    project.write("job.yml", COMMAND_JOB.format(path=uri))
    r = project.run(
        "job", "create", "-f", "job.yml", "--set", "experiment_name=../../x", check=False
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "experiment_name" in r.stderr
    assert not (project.root / "x").exists() and not (project.home.parent.parent / "x").exists()
    assert project.json("job", "list") == []


def test_a_datastore_output_inside_the_workspace_still_works(project: Project) -> None:
    uri = "azureml://datastores/workspaceblobstore/paths/ok/${{name}}"
    project.write("job.yml", COMMAND_JOB.format(path=uri))
    job, _ = project.create("job.yml")
    assert job["status"] == "Completed", job
    written = project.home / "datastores" / "workspaceblobstore" / "ok" / job["name"] / "f.txt"
    assert written.read_text().strip() == "written"


def test_a_datastore_input_that_climbs_out_is_refused(project: Project) -> None:
    (project.root / "secret.txt").write_text("s")
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: cat ${{inputs.d}}
        environment: azureml:testenv@latest
        inputs:
          d:
            type: uri_file
            path: azureml://datastores/workspaceblobstore/paths/../../../secret.txt
        """,
    )
    job, r = project.create("job.yml", check=False)
    assert r.returncode != 0 or job.get("status") == "Failed", (r.stdout, r.stderr)
    assert "leaves its datastore" in (r.stderr + r.stdout + str(job))
