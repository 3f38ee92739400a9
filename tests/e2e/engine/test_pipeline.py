"""Pipelines end to end through the CLI: DAG order, concurrency, reuse, failure semantics,
MLflow nesting, and bad input rejected before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Project, component

PIPE_HEAD = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: engine-test
settings:
  default_compute: azureml:cpu-cluster
"""

STEP_PY = """\
import argparse, os, pathlib, time
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--value"); p.add_argument("--upstream"); p.add_argument("--out")
p.add_argument("--sleep", type=float, default=0); p.add_argument("--data")
a = p.parse_args()
start = time.time()
time.sleep(a.sleep)
text = a.value or ""
if a.upstream:
    text += "+" + (pathlib.Path(a.upstream) / "v.txt").read_text()
if a.data:
    text += "+" + pathlib.Path(a.data).read_text().strip()
pathlib.Path(a.out, "v.txt").write_text(text)
pathlib.Path(a.out, "times.txt").write_text(f"{start} {time.time()}")
mlflow.log_metric("length", len(text))
print("wrote", text)
"""


def _project(project: Project) -> Project:
    project.write("src/step.py", STEP_PY)
    project.write("src/notes.md", "unrelated\n")
    project.write("src/.amlignore", "*.md\n")
    project.write("data/in.txt", "d1\n")
    project.write(
        "step.yml",
        component(
            "step",
            "python step.py --out ${{outputs.out}} $[[--value ${{inputs.value}}]] "
            "$[[--upstream ${{inputs.upstream}}]] $[[--sleep ${{inputs.sleep}}]] $[[--data ${{inputs.data}}]]",
            inputs="""\
            value: {type: string, optional: true}
            upstream: {type: uri_folder, optional: true}
            sleep: {type: number, optional: true}
            data: {type: uri_file, optional: true}
            """,
            outputs="out: {type: uri_folder}\n",
        ),
    )
    project.write(
        "pipe.yml",
        PIPE_HEAD
        + """\
inputs:
  v: a
  d:
    type: uri_file
    path: ./data/in.txt
jobs:
  first:
    type: command
    component: ./step.yml
    inputs:
      value: ${{parent.inputs.v}}
      data: ${{parent.inputs.d}}
  second:
    type: command
    component: ./step.yml
    inputs:
      value: b
      upstream: ${{parent.jobs.first.outputs.out}}
  third:
    type: command
    component: ./step.yml
    inputs:
      value: c
""",
    )
    return project


def _out(project: Project, step: dict) -> str:
    return (Path(step["outputs"]["out"]["local_path"]) / "v.txt").read_text()


def test_dag_order_bindings_and_outputs(project: Project) -> None:
    _project(project)
    job, r = project.create("pipe.yml")
    assert job["status"] == "Completed", r.stderr
    steps = project.steps(job["name"])
    assert _out(project, steps["first"]) == "a+d1"
    assert _out(project, steps["second"]) == "b+a+d1"  # ran after first, read its output
    assert _out(project, steps["third"]) == "c"
    assert all(s["properties"].get("azureml.isreused") is None for s in steps.values())
    # The stream shows each finished step with the last line it printed (its outcome).
    assert "second: Completed" in r.stderr and "s): wrote b+a+d1" in r.stderr, r.stderr


def test_rerun_reuses_everything_and_marks_it(project: Project) -> None:
    _project(project)
    first, _ = project.create("pipe.yml")
    second, r = project.create("pipe.yml")
    steps = project.steps(second["name"])
    for name, step in steps.items():
        assert step["properties"]["azureml.isreused"] == "true", name
        assert step["properties"]["azureml.reusedrunid"] == f"{first['name']}_{name}"
    assert "reused" in r.stderr


def _reused(project: Project, name: str) -> dict[str, bool]:
    return {
        k: v["properties"].get("azureml.isreused") == "true" for k, v in project.steps(name).items()
    }


def test_reuse_invalidation_rules(project: Project) -> None:
    _project(project)
    project.create("pipe.yml")
    # An unrelated file in the repo, and an ignored file in the code folder: still reused.
    project.write("README.md", "changed\n")
    project.write("src/notes.md", "edited, but ignored by src/.amlignore\n")
    job, _ = project.create("pipe.yml")
    assert _reused(project, job["name"]) == {"first": True, "second": True, "third": True}
    # A literal input change reruns that step and its dependants only.
    job, _ = project.create("pipe.yml", "--set", "inputs.v=z")
    assert _reused(project, job["name"]) == {"first": False, "second": False, "third": True}
    # Data content change: the step reading it reruns.
    project.write("data/in.txt", "d2\n")
    job, _ = project.create("pipe.yml", "--set", "inputs.v=z")
    assert _reused(project, job["name"]) == {"first": False, "second": False, "third": True}
    assert _out(project, project.steps(job["name"])["second"]) == "b+z+d2"
    # Code change: every step using that code reruns.
    project.write("src/step.py", STEP_PY + "\n# edited\n")
    job, _ = project.create("pipe.yml", "--set", "inputs.v=z")
    assert _reused(project, job["name"]) == {"first": False, "second": False, "third": False}
    # Environment change (a new version becomes @latest): everything reruns.
    project.write(
        "env.yml", (project.root / "env.yml").read_text().replace("ubuntu22.04", "ubuntu20.04")
    )
    project.run("environment", "create", "-f", "env.yml")
    job, _ = project.create("pipe.yml", "--set", "inputs.v=z")
    assert _reused(project, job["name"]) == {"first": False, "second": False, "third": False}


def test_deleted_outputs_are_not_reused(project: Project) -> None:
    import shutil

    _project(project)
    first, _ = project.create("pipe.yml")
    shutil.rmtree(project.steps(first["name"])["third"]["outputs"]["out"]["local_path"])
    job, _ = project.create("pipe.yml")
    assert _reused(project, job["name"]) == {"first": True, "second": True, "third": False}
    assert _out(project, project.steps(job["name"])["third"]) == "c"


def test_force_rerun_and_non_deterministic(project: Project) -> None:
    _project(project)
    project.create("pipe.yml")
    job, _ = project.create("pipe.yml", "--set", "settings.force_rerun=true")
    assert not any(_reused(project, job["name"]).values())
    text = (project.root / "step.yml").read_text() + "is_deterministic: false\n"
    project.write("step.yml", text)
    project.create("pipe.yml")
    job, _ = project.create("pipe.yml")
    assert not any(_reused(project, job["name"]).values())


def test_independent_steps_run_concurrently(project: Project) -> None:
    _project(project)
    project.write(
        "par.yml",
        PIPE_HEAD
        + """\
jobs:
  left:
    component: ./step.yml
    inputs: {value: l, sleep: 3}
  right:
    component: ./step.yml
    inputs: {value: r, sleep: 3}
""",
    )
    job, _ = project.create("par.yml")
    steps = project.steps(job["name"])
    (ls, le), (rs, re_) = (
        map(
            float,
            (Path(steps[s]["outputs"]["out"]["local_path"]) / "times.txt").read_text().split(),
        )
        for s in ("left", "right")
    )
    assert ls < re_ and rs < le, "the two independent steps did not overlap"


FAIL_PIPE = (
    PIPE_HEAD
    + """\
  continue_on_step_failure: {cosf}
jobs:
  bad:
    type: command
    command: echo about to fail; exit 3
    environment: azureml:testenv@latest
    outputs:
      o: {{type: uri_folder}}
  after_bad:
    component: ./step.yml
    inputs:
      upstream: ${{{{parent.jobs.bad.outputs.o}}}}
  independent:
    component: ./step.yml
    inputs: {{value: i, sleep: 1}}
"""
)


def test_failure_propagation_and_continue_on_step_failure(project: Project) -> None:
    _project(project)
    project.write("fail.yml", FAIL_PIPE.format(cosf="true"))
    job, r = project.create("fail.yml", check=False)
    assert r.returncode == 1
    assert job["status"] == "Failed"
    steps = project.steps(job["name"])
    assert steps["bad"]["status"] == "Failed"
    assert steps["after_bad"]["status"] == "NotStarted"  # dependants never start
    assert steps["independent"]["status"] == "Completed"  # other branches go on
    assert "about to fail" in r.stderr and "exited with code 3" in r.stderr  # log tail shown

    project.write("fail.yml", FAIL_PIPE.format(cosf="false"))
    job, r = project.create("fail.yml", "--set", "settings.force_rerun=true", check=False)
    steps = project.steps(job["name"])
    assert job["status"] == "Failed"
    assert steps["independent"]["status"] in ("Canceled", "NotStarted")
    log = Path(project.home / "jobs" / f"{job['name']}_bad" / "user_logs" / "std_log.txt")
    assert "about to fail" in log.read_text()  # a failed step keeps its logs


def test_rerun_after_failure_reuses_what_succeeded(project: Project) -> None:
    _project(project)
    project.write("fail.yml", FAIL_PIPE.format(cosf="true"))
    project.create("fail.yml", check=False)
    project.write(
        "fail.yml",
        FAIL_PIPE.format(cosf="true").replace("exit 3", "echo ok > ${{outputs.o}}/v.txt"),
    )
    job, _ = project.create("fail.yml")
    assert job["status"] == "Completed"
    assert _reused(project, job["name"]) == {"bad": False, "after_bad": False, "independent": True}


def test_mlflow_runs_nested_with_metrics(project: Project) -> None:
    _project(project)
    job, _ = project.create("pipe.yml", "--set", "display_name=engine pipe")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project.home / 'mlflow.db'}")
    parent_id = project.json("job", "show", "-n", job["name"])["properties"]["mlflow.runId"]
    for name, step in project.steps(job["name"]).items():
        run = client.get_run(step["properties"]["mlflow.runId"])
        assert run.data.tags["mlflow.parentRunId"] == parent_id, name
        assert run.info.status == "FINISHED"
        assert run.data.metrics["length"] == len(_out(project, step))
        # Named as in studio: the step's display name; the job name stays a tag.
        assert run.info.run_name == name and run.data.tags["azureml.jobName"] == step["name"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "engine pipe" and job["display_name"] == "engine pipe"


def test_invalid_yaml_and_dangling_bindings_rejected_before_running(project: Project) -> None:
    _project(project)
    bad = (project.root / "pipe.yml").read_text().replace("first.outputs.out", "nope.outputs.out")
    project.write("dangling.yml", bad)
    r = project.run("job", "create", "-f", "dangling.yml", check=False)
    assert r.returncode == 2
    assert "dangling.yml" in r.stderr and "nope" in r.stderr
    project.write(
        "typo.yml",
        (project.root / "pipe.yml").read_text().replace("type: uri_file", "type: uri_filez"),
    )
    r = project.run("job", "create", "-f", "typo.yml", check=False)
    assert r.returncode == 2 and "typo.yml" in r.stderr and "uri_filez" in r.stderr
    project.write(
        "step.yml", (project.root / "step.yml").read_text().replace("inputs.value", "inputs.valu")
    )
    r = project.run("job", "create", "-f", "pipe.yml", check=False)
    assert r.returncode == 2 and "valu" in r.stderr
    assert project.json("job", "list") == []  # nothing was submitted


def test_missing_data_path_is_named(project: Project) -> None:
    _project(project)
    (project.root / "data/in.txt").unlink()
    job, r = project.create("pipe.yml", check=False)
    assert job["status"] == "Failed"
    assert "in.txt" in r.stderr and "does not exist" in r.stderr
    assert json.loads(project.run("job", "show", "-n", job["name"]).stdout)["status"] == "Failed"
