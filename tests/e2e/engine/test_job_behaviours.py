"""Job behaviours as Azure ML has them, end to end through the CLI: standalone job metadata and
no reuse outside pipelines, the default `artifacts` output, `additional_includes`, empty
pipeline outputs, a new workspace's datastore folders, nested failure causes, `job validate`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from cli_support import Project, component

PIPE_HEAD = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: behaviours
settings:
  default_compute: azureml:cpu-cluster
"""
ENV = "environment: azureml:testenv@latest\n"

STANDALONE = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python -c "import os; print('run', os.environ['MLFLOW_RUN_ID'])"
environment: azureml:testenv@latest
experiment_name: standalone-exp
display_name: My standalone job
description: Trains nothing, says a lot.
tags:
  team: ml
  stage: dev
"""


def _mlflow(project: Project):  # noqa: ANN202
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{project.home / 'mlflow.db'}")


def test_standalone_job_keeps_its_metadata_in_show_and_mlflow(project: Project) -> None:
    project.write("job.yml", STANDALONE)
    job, r = project.create("job.yml")
    assert job["status"] == "Completed", r.stderr
    shown = project.json("job", "show", "-n", job["name"])
    assert shown["experiment_name"] == "standalone-exp"
    assert shown["display_name"] == "My standalone job"
    assert shown["description"] == "Trains nothing, says a lot."
    assert shown["tags"] == {"team": "ml", "stage": "dev"}
    run = _mlflow(project).get_run(shown["properties"]["mlflow.runId"])
    experiment = _mlflow(project).get_experiment(run.info.experiment_id)
    assert experiment.name == "standalone-exp"
    assert run.info.run_name == "My standalone job"
    assert run.data.tags["team"] == "ml" and run.data.tags["stage"] == "dev"
    assert run.data.tags["mlflow.note.content"] == "Trains nothing, says a lot."
    assert run.data.tags["azureml.jobName"] == job["name"]


def test_a_resubmitted_standalone_job_runs_anew(project: Project) -> None:
    project.write("job.yml", STANDALONE)
    first, _ = project.create("job.yml")
    second, r = project.create("job.yml")
    assert second["status"] == "Completed", r.stderr
    assert "azureml.isreused" not in second["properties"]
    assert second["properties"]["mlflow.runId"] != first["properties"]["mlflow.runId"]
    # it really ran: its own log names its own MLflow run
    log = project.home / "jobs" / second["name"] / "user_logs/std_log.txt"
    assert f"run {second['properties']['mlflow.runId']}" in log.read_text()


SWEEP = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
sampling_algorithm: grid
search_space:
  q: {type: choice, values: [1, 2]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 2, max_concurrent_trials: 2}
trial:
  command: python -c "import mlflow; mlflow.log_metric('acc', ${{search_space.q}})"
  environment: azureml:testenv@latest
"""


def test_a_resubmitted_standalone_sweep_runs_anew(project: Project) -> None:
    project.write("sweep.yml", SWEEP)
    first, _ = project.create("sweep.yml")
    second, r = project.create("sweep.yml")
    assert second["status"] == "Completed", r.stderr
    assert "azureml.isreused" not in second["properties"]
    assert second["properties"]["mlflow.runId"] != first["properties"]["mlflow.runId"]
    assert second["properties"]["best_child_run_id"].startswith(second["name"])


WRITER = """\
import os, pathlib
pathlib.Path("outputs/model").mkdir(parents=True, exist_ok=True)
pathlib.Path("outputs/model/weights.txt").write_text("w=1")
pathlib.Path("logs/train.log").write_text("epoch 1")
print("trained")
"""


def test_artifacts_output_bound_downstream_and_addressed_by_uri(project: Project) -> None:
    project.write("src/writer.py", WRITER)
    project.write(
        "pipe.yml",
        PIPE_HEAD
        + """\
outputs:
  report:
jobs:
  train:
    type: command
    code: ./src
    command: python writer.py
    environment: azureml:testenv@latest
    outputs:
      artifacts:
  check:
    type: command
    command: >-
      cat ${{inputs.art}}/outputs/model/weights.txt ${{inputs.art}}/logs/train.log
      > ${{outputs.report}}/seen.txt &&
      grep -q trained ${{inputs.art}}/user_logs/std_log.txt
    environment: azureml:testenv@latest
    inputs:
      art: ${{parent.jobs.train.outputs.artifacts}}
    outputs:
      report: ${{parent.outputs.report}}
""",
    )
    job, r = project.create("pipe.yml")
    assert job["status"] == "Completed", r.stderr
    # the empty-bodied pipeline output is a uri_folder the step wrote into
    report = job["outputs"]["report"]
    assert report["type"] == "uri_folder"
    assert (Path(report["local_path"]) / "seen.txt").read_text() == "w=1epoch 1"
    train = project.steps(job["name"])["train"]
    art = train["outputs"]["artifacts"]
    assert art["path"] == f"azureml://jobs/{train['name']}/outputs/artifacts"
    # the artifacts are the step's MLflow run's artifacts (runs:/<id>/... == .../artifacts/...)
    run = _mlflow(project).get_run(train["properties"]["mlflow.runId"])
    listed = {a.path for a in _mlflow(project).list_artifacts(run.info.run_id)}
    assert {"outputs", "logs", "user_logs"} <= listed
    # register the model the job wrote to ./outputs/model by its artifacts URI
    project.write(
        "model.yml",
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
        name: from-artifacts
        type: custom_model
        path: azureml://jobs/{train["name"]}/outputs/artifacts/paths/outputs/model
        """,
    )
    model = project.json("model", "create", "-f", "model.yml")
    assert (Path(model["path"]) / "weights.txt").read_text() == "w=1"


def test_a_standalone_job_has_the_artifacts_output(project: Project) -> None:
    project.write("src/writer.py", WRITER)
    project.write(
        "job.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: python writer.py\ncode: ./src\n" + ENV,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed", r.stderr
    ref = f"azureml://jobs/{job['name']}/outputs/artifacts/paths/outputs/model/weights.txt"
    project.write(
        "use.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: cat ${{inputs.w}}\n"
        + ENV
        + f"inputs:\n  w:\n    type: uri_file\n    path: {ref}\n",
    )
    used, r = project.create("use.yml")
    assert used["status"] == "Completed" and "w=1" in r.stderr, r.stderr


INC_STEP = """\
import pathlib, zipfile
import helper
from shared import words
names = sorted(zipfile.ZipFile("pkg.zip").namelist())
pathlib.Path(__import__("sys").argv[1], "r.txt").write_text(f"{helper.X} {words.W} {names}")
"""


def _includes_project(project: Project) -> None:
    project.write("comps/inc/src/main.py", INC_STEP)
    project.write("lib/helper.py", "X = 1\n")
    project.write("lib/shared/words.py", "W = 'hi'\n")
    project.write("lib/shared/notes.md", "ignored\n")
    project.write("lib/shared/.amlignore", "*.md\n")
    project.write("lib/pkg/a.txt", "a\n")
    project.write(
        "comps/inc/inc.yml",
        component(
            "inc",
            "python main.py ${{outputs.out}}",
            outputs="out: {type: uri_folder}\n",
            code="./src",
            extra="additional_includes:\n  - ../../lib/helper.py\n  - ../../lib/shared\n"
            "  - ../../lib/pkg.zip\n",
        ),
    )
    project.write(
        "pipe.yml",
        PIPE_HEAD + "jobs:\n  inc:\n    type: command\n    component: ./comps/inc/inc.yml\n",
    )


def test_additional_includes_land_in_the_snapshot_and_count_for_reuse(project: Project) -> None:
    _includes_project(project)
    job, r = project.create("pipe.yml")
    assert job["status"] == "Completed", r.stderr
    step = project.steps(job["name"])["inc"]
    out = (Path(step["outputs"]["out"]["local_path"]) / "r.txt").read_text()
    assert out == "1 hi ['pkg/', 'pkg/a.txt']"
    wd = project.home / "jobs" / step["name"] / "wd"
    assert (wd / "helper.py").is_file() and not (wd / "shared" / "notes.md").exists()
    again, _ = project.create("pipe.yml")
    assert project.steps(again["name"])["inc"]["properties"].get("azureml.isreused") == "true"
    project.write("lib/helper.py", "X = 2\n")  # an included file changed: the step reruns
    third, _ = project.create("pipe.yml")
    step = project.steps(third["name"])["inc"]
    assert step["properties"].get("azureml.isreused") is None
    assert (Path(step["outputs"]["out"]["local_path"]) / "r.txt").read_text().startswith("2 ")
    # a registered component takes its includes into its snapshot
    project.run("component", "create", "-f", "comps/inc/inc.yml")
    project.write(
        "reg.yml",
        PIPE_HEAD + "jobs:\n  inc:\n    type: command\n    component: azureml:inc@latest\n",
    )
    job, r = project.create("reg.yml")
    step = project.steps(job["name"])["inc"]
    assert (Path(step["outputs"]["out"]["local_path"]) / "r.txt").read_text().startswith("2 hi")


def test_datastore_folders_exist_in_a_new_workspace(project: Project) -> None:
    project.write(
        "job.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: test -d ${{inputs.root}} && echo found\n"
        + ENV
        + "inputs:\n  root:\n    type: uri_folder\n"
        "    path: azureml://datastores/workspaceblobstore/paths/azureml\n",
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed", r.stderr


def test_a_nested_pipeline_failure_names_the_failing_step_exit_code_and_log(
    project: Project,
) -> None:
    project.write(
        "inner.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
        name: inner
        type: pipeline
        jobs:
          prep_job:
            type: command
            command: echo fine
            environment: azureml:testenv@latest
          transform_job:
            type: command
            command: echo boom-marker-42; exit 3
            environment: azureml:testenv@latest
        """,
    )
    project.write(
        "pipe.yml", PIPE_HEAD + "jobs:\n  outer:\n    type: pipeline\n    component: ./inner.yml\n"
    )
    job, r = project.create("pipe.yml", check=False)
    assert r.returncode == 1 and job["status"] == "Failed"
    node = project.steps(job["name"])["outer"]
    error = node["error"]
    assert error["failed_step"] == "transform_job" and error["exit_code"] == 3
    assert "boom-marker-42" in error["log_tail"]
    assert "transform_job" in r.stderr and "code 3" in r.stderr and "boom-marker-42" in r.stderr


def test_job_validate_plans_without_running_and_names_errors(project: Project) -> None:
    project.write("src/writer.py", WRITER)
    project.write(
        "pipe.yml",
        PIPE_HEAD + "jobs:\n  a:\n    type: command\n    code: ./src\n"
        "    command: python writer.py\n    environment: azureml:testenv@latest\n",
    )
    r = project.run("job", "validate", "-f", "pipe.yml")
    assert json.loads(r.stdout) == {"result": "Succeeded"}
    assert project.json("job", "list") == []  # nothing was created or run
    project.write(
        "bad_cmd.yml",
        (project.root / "pipe.yml").read_text().replace("writer.py", "w.py ${{inputs.nope}}"),
    )
    r = project.run("job", "validate", "-f", "bad_cmd.yml", check=False)
    assert r.returncode == 2 and "bad_cmd.yml" in r.stderr and "nope" in r.stderr
    project.write(
        "bad_env.yml",
        (project.root / "pipe.yml").read_text().replace("testenv@latest", "missing:1"),
    )
    r = project.run("job", "validate", "-f", "bad_env.yml", check=False)
    assert r.returncode == 2 and "bad_env.yml: jobs.a.environment" in r.stderr
    r = project.run("job", "validate", "-f", "absent.yml", check=False)
    assert r.returncode == 2 and "absent.yml" in r.stderr
    assert project.json("job", "list") == []


def test_zip_include_is_the_folder_zipped_with_its_root(project: Project) -> None:
    """azure-ai-ml's layout: `pkg.zip` holds `pkg/` and its files under it."""
    _includes_project(project)
    job, _ = project.create("pipe.yml")
    step = project.steps(job["name"])["inc"]
    wd = project.home / "jobs" / step["name"] / "wd"
    assert zipfile.ZipFile(wd / "pkg.zip").read("pkg/a.txt") == b"a\n"
