"""Assets and references: registered components and data, datastore paths, environment
variables, a user's own MLflow tracking URI, and immutable asset versions."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Project, component

PY = """\
import os, pathlib, sys
out = pathlib.Path(sys.argv[2])
text = pathlib.Path(sys.argv[1]).read_text().strip()
(out / "r.txt").write_text(f"{text}|{os.environ.get('GREETING')}|{os.environ.get('AZURE_ML_INPUT_src')}")
import mlflow
mlflow.log_metric("chars", len(text))
"""


def _files(project: Project) -> None:
    project.write("src/s.py", PY)
    project.write(
        "comp.yml",
        component(
            "copier",
            "python s.py ${{inputs.src}} ${{outputs.out}}",
            inputs="src: {type: uri_file}\n",
            outputs="out: {type: uri_folder}\n",
        ),
    )
    project.write(
        "data.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
        name: words
        version: "1"
        type: uri_file
        path: ./words.txt
        """,
    )
    project.write("words.txt", "hello\n")


def test_registered_component_and_data_assets_by_reference(project: Project) -> None:
    _files(project)
    comp = project.json("component", "create", "-f", "comp.yml")
    assert comp["name"] == "copier" and comp["version"] == "1"
    data = project.json("data", "create", "-f", "data.yml")
    assert data["path"].startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    # The asset is a copy: editing the local file does not change version 1.
    project.write("words.txt", "changed\n")
    project.write(
        "p.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: refs
        settings:
          default_compute: azureml:cpu-cluster
        jobs:
          copy:
            type: command
            component: azureml:copier@latest
            inputs:
              src:
                type: uri_file
                path: azureml:words:1
            environment_variables:
              GREETING: hi there
        """,
    )
    job, r = project.create("p.yml")
    assert job["status"] == "Completed", r.stderr
    step = project.steps(job["name"])["copy"]
    text = (Path(step["outputs"]["out"]["local_path"]) / "r.txt").read_text()
    src, greeting, env_input = text.split("|")
    assert src == "hello" and greeting == "hi there"
    assert env_input.endswith("words.txt")  # AZURE_ML_INPUT_<name> is set
    # Immutable versions: the same version with other content is refused, naming the asset.
    r = project.run("data", "create", "-f", "data.yml", check=False)
    assert r.returncode == 2 and "words:1" in r.stderr and "immutable" in r.stderr
    assert project.json("data", "show", "-n", "words", "-v", "1")["version"] == "1"


def test_datastore_paths_map_to_local_folders(project: Project) -> None:
    _files(project)
    ds = project.home / "datastores/workspaceblobstore/shared/in.txt"
    ds.parent.mkdir(parents=True)
    ds.write_text("from the datastore\n")
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python s.py ${{inputs.src}} ${{outputs.out}}
        code: ./src
        environment: azureml:testenv@latest
        inputs:
          src:
            type: uri_file
            path: azureml://datastores/workspaceblobstore/paths/shared/in.txt
        outputs:
          out:
            type: uri_folder
        """,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed", r.stderr
    out = Path(job["outputs"]["out"]["local_path"]) / "r.txt"
    assert out.read_text().startswith("from the datastore|")


def test_users_own_mlflow_tracking_uri_is_honoured(project: Project, tmp_path: Path) -> None:
    _files(project)
    uri = f"sqlite:///{tmp_path / 'team-mlflow.db'}"
    project.env["MLFLOW_TRACKING_URI"] = uri
    assert project.json("workspace", "show")["mlflow_tracking_uri"] == uri
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python s.py ${{inputs.src}} ${{outputs.out}}
        code: ./src
        environment: azureml:testenv@latest
        experiment_name: shared-server
        inputs:
          src:
            type: uri_file
            path: ./words.txt
        outputs:
          out:
            type: uri_folder
        """,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed", r.stderr
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(job["properties"]["mlflow.runId"])
    assert run.data.metrics["chars"] == len("hello")
    assert not (project.home / "mlflow.db").exists()  # nothing went to the local store
    shown = json.loads(project.run("job", "show", "-n", job["name"]).stdout)
    assert shown["services"]["Tracking"]["endpoint"] == uri


def test_steps_run_offline_mlflow_telemetry_off_unless_the_user_says(project: Project) -> None:
    """MLflow 3 phones home from every process that imports it; pytest and CI variables
    would hide that here, so they are removed from the CLI's environment."""
    project.write(
        "src/t.py",
        "import os\nprint('telemetry-off=' + os.environ.get('MLFLOW_DISABLE_TELEMETRY', 'unset'))\n",
    )
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python t.py
        code: ./src
        environment: azureml:testenv@latest
        """,
    )
    for key in ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY"):
        project.env.pop(key, None)
    for user_value, seen in ((None, "true"), ("false", "false")):
        if user_value:
            project.env["MLFLOW_DISABLE_TELEMETRY"] = user_value
            project.write("src/t.py", (project.root / "src/t.py").read_text() + "# rerun\n")
        job, r = project.create("job.yml")
        assert job["status"] == "Completed", r.stderr
        log = project.home / "jobs" / job["name"] / "user_logs" / "std_log.txt"
        assert f"telemetry-off={seen}" in log.read_text()
