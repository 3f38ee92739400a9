"""The retrain batch endpoint (a pipeline-component deployment of the training pipeline) and
`type: pipeline` steps: invoking the endpoint runs prep -> train -> evaluate -> register and
registers a model; a pipeline node runs its component's jobs as nested child jobs; the
component is wired exactly like pipelines/train.yml, from the same component files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from cli_support import ENV_YML, Project, component

from tests.batch_support import ROOT, assert_no_processes

RETRAIN = ROOT / "endpoints" / "batch" / "retrain"
COMPONENT = ROOT / "pipelines" / "train-component.yml"
# train.yml steps that are deliberately not part of the retrain component.
NOT_IN_COMPONENT = {"deploy"}  # blue/green to the online endpoint: a separate concern


def test_component_is_train_yml_wiring_over_the_same_component_files() -> None:
    comp = yaml.safe_load(COMPONENT.read_text())
    train = yaml.safe_load((ROOT / "pipelines" / "train.yml").read_text())
    assert set(train["jobs"]) - set(comp["jobs"]) <= NOT_IN_COMPONENT
    for name, node in comp["jobs"].items():
        assert node == train["jobs"][name], f"jobs.{name} differs from pipelines/train.yml"
    used = {
        str(v).split("parent.inputs.")[1].rstrip("}")
        for node in comp["jobs"].values()
        for v in (node.get("inputs") or {}).values()
        if "parent.inputs." in str(v)
    }
    assert used == set(comp["inputs"])  # every component input reaches a step
    for name in used:
        value, decl = train["inputs"][name], comp["inputs"][name]
        if isinstance(value, dict):
            assert decl["type"] == value["type"]
        else:
            assert decl["default"] == value, name
    for name, decl in comp["outputs"].items():
        assert decl["type"] == train["outputs"][name]["type"]


def test_invoking_the_retrain_endpoint_trains_and_registers(tmp_path: Path) -> None:
    project = Project(tmp_path)
    for f in ("data/diabetes.yml", "environments/train.yml"):
        kind = "data" if f.startswith("data") else "environment"
        project.run(kind, "create", "-f", str(ROOT / f), "-o", "none")
    project.run("batch-endpoint", "create", "-f", str(RETRAIN / "endpoint.yml"), "-o", "none")
    dep = project.json(
        "batch-deployment", "create", "-f", str(RETRAIN / "deployment.yml"), "--set-default"
    )
    assert dep["type"] == "pipeline"
    assert dep["component"]["jobs"] == ["prep", "train", "evaluate", "register"]
    job = project.json(
        "batch-endpoint",
        "invoke",
        "-n",
        "diabetes-retrain",
        "-f",
        str(RETRAIN / "inputs.yaml"),
        "--set",
        "inputs.alpha=0.3",
    )
    assert job["type"] == "pipeline" and job["inputs"]["alpha"] == 0.3
    # `job stream` prints the log on stdout, as az ml's does; the status comes from `job show`.
    r = project.run("job", "stream", "-n", job["name"], check=False)
    final = project.json("job", "show", "-n", job["name"])
    assert final["status"] == "Completed", r.stdout + r.stderr
    steps = {c["step_name"]: c for c in project.json("job", "list", "-p", job["name"])}
    assert list(steps) == ["prep", "train", "evaluate", "register"]
    assert all(s["status"] == "Completed" for s in steps.values())
    versions = project.json("model", "list", "-n", "diabetes-model")
    assert [v["version"] for v in versions] == ["1"]
    info = project.root / "reg"
    project.run("job", "download", "-n", job["name"], "--output-name", "registration", "-p", "reg")
    registered = json.loads((info / "named-outputs/registration/model_info.json").read_text())
    assert registered["registered"] is True and registered["version"] == "1"
    assert (
        project.json("batch-endpoint", "list-jobs", "-n", "diabetes-retrain")[0]["name"]
        == (job["name"])
    )
    r = project.run(
        "batch-endpoint", "invoke", "-n", "diabetes-retrain", "--set", "inputs.nope=1", check=False
    )
    assert r.returncode != 0 and "nope" in r.stderr
    # The same invocation again (issue 31, item 2): prep and train are reused, evaluate and
    # register read the registry (is_deterministic: false) and decide again: v1 is the same
    # model, so nothing is registered, and register's log says so.
    again = project.json("batch-endpoint", "invoke", "-n", "diabetes-retrain",
                         "-f", str(RETRAIN / "inputs.yaml"), "--set", "inputs.alpha=0.3")  # fmt: skip
    project.run("job", "stream", "-n", again["name"], check=False)
    assert project.json("job", "show", "-n", again["name"])["status"] == "Completed"
    steps = {c["step_name"]: c for c in project.json("job", "list", "-p", again["name"])}
    reused = {n: s["properties"].get("azureml.isreused") == "true" for n, s in steps.items()}
    assert reused == {"prep": True, "train": True, "evaluate": False, "register": False}
    log = project.home / "jobs" / steps["register"]["name"] / "user_logs" / "std_log.txt"
    assert "register: not registered" in log.read_text()
    assert [v["version"] for v in project.json("model", "list", "-n", "diabetes-model")] == ["1"]
    assert_no_processes(project.home)


WRITE_PY = """\
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--text"); p.add_argument("--upstream"); p.add_argument("--out")
a = p.parse_args()
prefix = (pathlib.Path(a.upstream) / "v.txt").read_text() + "+" if a.upstream else ""
pathlib.Path(a.out, "v.txt").write_text(prefix + a.text)
"""


def test_pipeline_node_runs_its_component_as_nested_jobs(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write("env.yml", ENV_YML)
    project.run("environment", "create", "-f", "env.yml", "-o", "none")
    project.write("src/write.py", WRITE_PY)
    project.write(
        "write.yml",
        component(
            "write",
            "python write.py --text ${{inputs.text}} $[[--upstream ${{inputs.upstream}}]] "
            "--out ${{outputs.out}}",
            inputs="text: {type: string}\nupstream: {type: uri_folder, optional: true}\n",
            outputs="out: {type: uri_folder}\n",
        ),
    )
    project.write(
        "inner.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
        type: pipeline
        name: inner
        version: "1"
        inputs:
          word: {type: string, default: x}
        outputs:
          result: {type: uri_folder}
        jobs:
          a:
            type: command
            component: ./write.yml
            inputs:
              text: ${{parent.inputs.word}}
          b:
            type: command
            component: ./write.yml
            inputs:
              text: b
              upstream: ${{parent.jobs.a.outputs.out}}
            outputs:
              out: ${{parent.outputs.result}}
        """,
    )
    project.write(
        "outer.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: nested
        settings:
          default_compute: azureml:cpu-cluster
        outputs:
          final: {type: uri_folder}
        jobs:
          inner:
            type: pipeline
            component: ./inner.yml
            inputs:
              word: hello
          last:
            type: command
            component: ./write.yml
            inputs:
              text: c
              upstream: ${{parent.jobs.inner.outputs.result}}
            outputs:
              out: ${{parent.outputs.final}}
        """,
    )
    job, r = project.create("outer.yml")
    assert job["status"] == "Completed", r.stderr
    assert job["jobs"]["inner"]["status"] == "Completed"
    final = Path(job["outputs"]["final"]["local_path"]) / "v.txt"
    assert final.read_text() == "hello+b+c"
    nested = project.json("job", "list", "-p", f"{job['name']}_inner")
    assert [(n["step_name"], n["status"]) for n in nested] == [
        ("a", "Completed"),
        ("b", "Completed"),
    ]
    # A rerun reuses the nested jobs like any step.
    again, _ = project.create("outer.yml")
    nested = project.json("job", "list", "-p", f"{again['name']}_inner")
    assert all(n["properties"].get("azureml.isreused") == "true" for n in nested)
