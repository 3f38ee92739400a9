"""Deployments written the way Microsoft's docs write them, through the real CLI (subprocesses,
HTTP on 127.0.0.1): inline custom and MLflow models (registered as Azure registers them),
the AZUREML_MODEL_DIR layout (the registered path's last component kept), explicit asset
versions, and the flag-style verbs (`model create --name --path`, `--set a=b c=d`,
`online-deployment update -n -e --set`, `model download`). Fixtures:
tests/fixtures/endpoint-fidelity/."""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path

import pytest
from cli_support import Project

from tests.batch_support import wait_status

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "endpoint-fidelity"


def _project(tmp_path: Path) -> Project:
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    project = Project(tmp_path)
    # Steps with a curated environment run in the project venv: resolved and checked, never
    # built (building one would reach PyPI; tests stay offline).
    project.env["AMLOCAL_ENVIRONMENTS"] = "project"
    return project


def _save_mlflow_model(dest: Path) -> None:
    """y = 2 a + 3 b + 1, as an MLflow sklearn model with a signature."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": [0.0, 1.0, 0.0, 2.0], "b": [0.0, 0.0, 1.0, 1.0]})
    y = 2 * x["a"] + 3 * x["b"] + 1
    model = LinearRegression().fit(x, y)
    mlflow.sklearn.save_model(model, str(dest), signature=infer_signature(x, np.asarray(y)))


def _post(project: Project, endpoint: str, body: dict, deployment: str) -> list[float]:
    show = project.json("online-endpoint", "show", "-n", endpoint)
    keys = project.json("online-endpoint", "get-credentials", "-n", endpoint)
    port = int(show["scoring_uri"].split(":")[2].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            "/score",
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {keys['primaryKey']}",
                "azureml-model-deployment": deployment,
            },
        )
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, data
    return json.loads(data)


@pytest.fixture()
def online(tmp_path: Path):
    project = _project(tmp_path)
    yield project
    project.run("online-endpoint", "delete", "-n", "fid-online", "--yes", check=False)


def test_online_inline_custom_and_mlflow_models(online: Project) -> None:
    _save_mlflow_model(online.root / "mlflow-model")
    online.run("online-endpoint", "create", "-f", "online/endpoint.yml", "-o", "none")

    custom = online.json("online-deployment", "create", "-f", "online/custom.yml", "--all-traffic")
    assert custom["provisioning_state"] == "Succeeded"
    name, version = custom["model"].removeprefix("azureml:").split(":")
    assert version == "1" and len(name) == 64  # anonymous: named by content, version 1
    # score.py reads $AZUREML_MODEL_DIR/model/weights.json: the folder name is kept
    assert _post(online, "fid-online", {"data": [[1, 2], [0, 0]]}, "custom") == [9.0, 1.0]

    mlflow_dep = online.json("online-deployment", "create", "-f", "online/mlflow.yml")
    assert mlflow_dep["model"] == "azureml:fid-mlflow:2"  # the inline version is honoured
    out = _post(
        online,
        "fid-online",
        {"input_data": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}},
        "mlflow",
    )
    assert out == pytest.approx([9.0])
    assert online.json("model", "show", "-n", "fid-mlflow", "--version", "2")["version"] == "2"
    assert online.json("model", "show", "-n", "fid-mlflow", "--label", "latest")["version"] == "2"
    missing = online.run("model", "show", "-n", "fid-mlflow", "--version", "1", check=False)
    assert missing.returncode == 3

    # update without --file: the stored deployment with the changes (several after one --set)
    updated = online.json(
        "online-deployment",
        "update",
        "-n",
        "custom",
        "-e",
        "fid-online",
        "--set",
        "environment_variables.FID=1",
        "tags.stage=test",
    )
    assert updated["environment_variables"] == {"FID": 1} or updated["environment_variables"] == {
        "FID": "1"
    }
    assert updated["tags"] == {"stage": "test"}
    assert updated["model"] == custom["model"]  # the same registered model, not a new one
    assert _post(online, "fid-online", {"data": [[1, 1]]}, "custom") == [6.0]

    # a curated environment from the azureml registry; the same inline model is reused
    r = online.run("online-deployment", "create", "-f", "online/curated.yml")
    curated = json.loads(r.stdout)
    assert curated["model"] == custom["model"]
    assert curated["environment"].endswith("sklearn-1.5/labels/latest")
    assert "curated environment" in r.stderr and "sklearn-1.5" in r.stderr
    assert _post(online, "fid-online", {"data": [[2, 0]]}, "curated") == [5.0]

    ep = online.json(
        "online-endpoint",
        "update",
        "-n",
        "fid-online",
        "--set",
        "traffic.custom=0",
        "traffic.mlflow=100",
    )
    assert ep["traffic"] == {"custom": 0, "mlflow": 100, "curated": 0}


def test_batch_inline_folder_model_and_single_file_model(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("batch-endpoint", "create", "-f", "batch/endpoint.yml", "-o", "none")
    inline = project.json("batch-deployment", "create", "-f", "batch/inline.yml", "--set-default")
    assert inline["model"].endswith(":1")

    # a model registered from a single file, with az ml's flags
    reg = project.json(
        "model", "create", "--name", "fid-file-model", "--version", "1",
        "--path", "model-src/weights.json", "--type", "custom_model",
        "--tags", "source=file", "kind=linear",
    )  # fmt: skip
    assert (reg["version"], reg["type"]) == ("1", "custom_model")
    assert reg["tags"]["source"] == "file" and reg["tags"]["kind"] == "linear"
    project.run("batch-deployment", "create", "-f", "batch/file-model.yml", "-o", "none")

    for dep, expected in (
        ("inline", {"a.csv 9.0", "a.csv 1.0", "b.csv 10.0"}),
        ("file-model", {"a.csv 10.0", "a.csv 0.0", "b.csv 30.0"}),
    ):
        job = project.json(
            "batch-endpoint", "invoke", "-n", "fid-batch", "-d", dep, "--input", "batch/data"
        )
        assert (
            wait_status(project, job["name"], {"Completed", "Failed", "Canceled"})["status"]
            == "Completed"
        )
        out = tmp_path / f"out-{dep}"
        project.run("job", "download", "-n", job["name"], "--all", "--download-path", str(out))
        lines = {
            ln.strip() for p in out.rglob("predictions.csv") for ln in p.read_text().splitlines()
        }
        assert lines == expected, (dep, lines)

    # model download lands in <path>/<name>/<registered file name>
    project.run("model", "download", "-n", "fid-file-model", "-v", "1", "--download-path", "dl")
    assert json.loads((tmp_path / "dl" / "fid-file-model" / "weights.json").read_text())["coef"]


def test_job_model_input_is_the_registered_folder(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("model", "create", "-f", "model.yml", "-o", "none")
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python -c "import json,sys; print('COEF', json.load(open(sys.argv[1] + '/weights.json'))['coef'])" ${{inputs.model}}
        environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
        inputs:
          model:
            type: custom_model
            path: azureml:fid-folder-model:3
        """,
    )
    _, r = project.create("job.yml")
    assert "COEF [2.0, 3.0]" in r.stdout + r.stderr


def test_asset_versions_are_honoured_and_immutable(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first = project.json("model", "create", "-f", "model.yml")
    assert first["version"] == "3"
    again = project.json("model", "create", "-f", "model.yml")  # same content: a no-op
    assert again["version"] == "3"
    assert [m["version"] for m in project.json("model", "list", "--name", "fid-folder-model")] == [
        "3"
    ]
    (tmp_path / "model-src" / "model" / "weights.json").write_text(
        '{"coef": [0, 0], "intercept": 0}'
    )
    r = project.run("model", "create", "-f", "model.yml", check=False)
    assert r.returncode == 2
    assert "model.yml" in r.stderr and "fid-folder-model:3 already exists" in r.stderr
    assert "model-uploads" in r.stderr  # names the content registered before
    bumped = project.json("model", "create", "-f", "model.yml", "--set", "version=4")
    assert bumped["version"] == "4"

    project.write("data/rows.csv", "a,b\n1,2\n")
    data = project.json(
        "data", "create", "--name", "rows", "--version", "7", "--type", "uri_file",
        "--path", "data/rows.csv",
    )  # fmt: skip
    assert data["version"] == "7"
    project.write("data/rows.csv", "a,b\n3,4\n")
    r = project.run(
        "data", "create", "--name", "rows", "--version", "7", "--type", "uri_file",
        "--path", "data/rows.csv", check=False,
    )  # fmt: skip
    assert r.returncode == 2 and "data rows:7 already exists" in r.stderr
    assert "create flags" in r.stderr

    env = project.json(
        "environment", "create", "--name", "fid-env", "--version", "5",
        "--image", "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
        "--conda-file", "online/conda.yml",
    )  # fmt: skip
    assert (env["name"], env["version"]) == ("fid-env", "5")


def test_missing_inline_model_path_is_a_clear_error(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("batch-endpoint", "create", "-f", "batch/endpoint.yml", "-o", "none")
    shutil.rmtree(tmp_path / "model-src" / "model")
    r = project.run("batch-deployment", "create", "-f", "batch/inline.yml", check=False)
    assert r.returncode == 2, r.stderr
    assert "inline.yml" in r.stderr and '"model"' in r.stderr  # azure-ai-ml's own message
    assert f"No such file or directory: '{tmp_path / 'model-src' / 'model'}'" in r.stderr
    r = project.run("model", "create", "--name", "x", "--path", "nowhere", check=False)
    assert r.returncode == 2 and "--path nowhere" in r.stderr


def test_registered_pipeline_component_and_job_definition_deployments(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("compute", "create", "-n", "cpu-cluster", "--type", "amlcompute",
                "--min-instances", "0", "--max-instances", "2", "-o", "none")  # fmt: skip
    project.run("component", "create", "-f", "pipeline/component.yml", "-o", "none")
    project.run("batch-endpoint", "create", "-f", "batch/endpoint.yml", "-o", "none")
    dep = project.json("batch-deployment", "create", "-f", "pipeline/deployment.yml")
    assert dep["type"] == "pipeline" and dep["component"] == "azureml:fid_total@latest"

    def total(job_name: str) -> str:
        job = wait_status(project, job_name, {"Completed", "Failed", "Canceled"})
        assert job["status"] == "Completed", job
        out = tmp_path / f"out-{job_name}"
        project.run("job", "download", "-n", job_name, "--all", "--download-path", str(out))
        return next(out.rglob("total.txt")).read_text().strip()

    job = project.json("batch-endpoint", "invoke", "-n", "fid-batch", "-d", "total",
                       "-f", "pipeline/inputs.yml", "--set", "inputs.scale=3")  # fmt: skip
    assert total(job["name"]) == "12.0"  # (1 + 0 + 3) * 3

    # a deployment made from that finished pipeline job, as `--set job_definition=` does
    child = project.json("job", "list", "--parent-job-name", job["name"])
    assert child  # the invocation ran as a pipeline job with its step
    project.write(
        "from-job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponentBatchDeployment.schema.json
        name: from-job
        endpoint_name: fid-batch
        type: pipeline
        settings:
          default_compute: azureml:cpu-cluster
        """,
    )
    project.run("batch-deployment", "create", "-f", "from-job.yml",
                "--set", f"job_definition=azureml:{job['name']}", "-o", "none")  # fmt: skip
    again = project.json("batch-endpoint", "invoke", "-n", "fid-batch", "-d", "from-job")
    assert total(again["name"]) == "12.0"  # the job's own inputs are the defaults

    listed = project.json("batch-deployment", "list-jobs", "-n", "total", "-e", "fid-batch")
    assert [j["name"] for j in listed] == [job["name"]]
    all_jobs = project.json("batch-endpoint", "list-jobs", "-n", "fid-batch")
    assert [j["name"] for j in all_jobs] == [again["name"], job["name"]]
    assert project.json("compute", "show", "-n", "cpu-cluster")["max_instances"] == 2


def test_an_az_ml_script_runs_unchanged(tmp_path: Path) -> None:
    """deploy.sh is written for `az ml`; only `az` is swapped for amlocal."""

    project = _project(tmp_path)
    try:
        r = project.az_script("deploy.sh")
    finally:
        project.run("online-endpoint", "delete", "-n", "fid-script", "--yes", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(json.loads((tmp_path / "online-response.json").read_text())) == [9.0, 1.0]
    assert (tmp_path / "downloaded" / "fid-script-model" / "model" / "weights.json").is_file()
    assert len((tmp_path / "batch-jobs.txt").read_text().split()) == 1
    assert "offline every job runs on this machine" in r.stderr


def test_unknown_curated_environment_is_a_clear_error(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("batch-endpoint", "create", "-f", "batch/endpoint.yml", "-o", "none")
    r = project.run(
        "batch-deployment", "create", "-f", "batch/inline.yml",
        "--set", "environment=azureml:AzureML-no-such-env@latest", check=False,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "inline.yml: environment:" in r.stderr and "no-such-env" in r.stderr
