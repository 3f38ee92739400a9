"""Batch endpoints end to end through the real CLI in a temp workspace: invoke the script and
MLflow deployments of endpoints/batch/diabetes/ on the committed folder and on many
generated files; predictions equal the model's in-process ones row for row; a corrupt CSV
fails only its mini-batch and error_threshold decides the job; a hanging run() is retried
then failed by retry_settings.timeout; cancel stops everything; an empty folder is a clear
error; pipelines/batch-score.yml predicts exactly what the endpoint does; invoke imports
neither azure-ai-ml nor MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import Project

from tests.batch_support import (
    FEATURES,
    ROOT,
    assert_no_processes,
    expected,
    load_model,
    read_predictions,
    register_model,
    wait_status,
)

BATCH = ROOT / "endpoints" / "batch" / "diabetes"
COMMITTED = ROOT / "data" / "diabetes-batch"
HANG_PY = """\
import os, time
def init():
    pass
def run(mini_batch):
    if any(os.path.basename(p).startswith("hang") for p in mini_batch):
        print("hanging on", mini_batch, flush=True)
        time.sleep(3600)
    return [os.path.basename(p) for p in mini_batch]
"""
HANG_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
name: hang
endpoint_name: diabetes-batch
type: model
model: azureml:diabetes-model@latest
code_configuration:
  code: ./hang
  scoring_script: hang.py
environment: azureml:diabetes-score:3
compute: azureml:cpu-cluster
settings:
  mini_batch_size: 1
  max_concurrency_per_instance: 1
  output_action: append_row
  retry_settings:
    max_retries: 1
    timeout: {timeout}
  error_threshold: 0
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    """One workspace: the score environment, the model, the endpoint and its deployments."""
    project = Project(tmp_path_factory.mktemp("batch"))
    project.run("environment", "create", "-f", str(ROOT / "environments/score.yml"), "-o", "none")
    model_dir = register_model(project)
    project.run("batch-endpoint", "create", "-f", str(BATCH / "endpoint.yml"), "-o", "none")
    project.run("batch-deployment", "create", "-f", str(BATCH / "deployment.yml"), "--set-default")
    project.run("batch-deployment", "create", "-f", str(BATCH / "deployment-mlflow.yml"))
    project.write("hang/hang.py", HANG_PY)
    project.write("hang.yml", HANG_YML.format(timeout=2))
    project.run("batch-deployment", "create", "-f", "hang.yml", "-o", "none")
    yield project, model_dir
    assert_no_processes(project.home)


def invoke(project: Project, *args: str) -> str:
    job = project.json("batch-endpoint", "invoke", "-n", "diabetes-batch", *args)
    assert job["type"] == "parallel" and job["status"] in ("NotStarted", "Running")
    return job["name"]


def stream(project: Project, name: str) -> tuple[dict, str]:
    r = project.run("job", "stream", "-n", name, check=False)
    return project.json("job", "show", "-n", name), r.stdout + r.stderr


def predictions(project: Project, name: str, dest: Path) -> pd.DataFrame:
    project.run("job", "download", "-n", name, "--output-name", "score", "-p", str(dest))
    return read_predictions(dest / "named-outputs" / "score" / "predictions.csv")


def test_records_have_az_ml_shapes(ws: tuple[Project, Path]) -> None:
    project, _ = ws
    ep = project.json("batch-endpoint", "show", "-n", "diabetes-batch")
    assert ep["defaults"] == {"deployment_name": "score-script"}
    assert ep["auth_mode"] == "aad_token" and ep["provisioning_state"] == "Succeeded"
    deps = {d["name"]: d for d in project.json("batch-deployment", "list", "-e", "diabetes-batch")}
    assert set(deps) == {"score-script", "mlflow", "hang"}
    dep = project.json("batch-deployment", "show", "-e", "diabetes-batch", "-n", "score-script")
    assert dep["model"] == "azureml:diabetes-model:1" and dep["type"] == "model"
    assert dep["settings"]["mini_batch_size"] == 2 and "_runtime" not in dep
    assert [e["name"] for e in project.json("batch-endpoint", "list")] == ["diabetes-batch"]


def test_invoke_committed_folder_matches_in_process(ws: tuple[Project, Path]) -> None:
    project, model_dir = ws
    name = invoke(project, "--input", str(COMMITTED), "--input-type", "uri_folder")
    job, log = stream(project, name)
    assert job["status"] == "Completed", log
    assert "progress: mini-batches 2/2" in log and "442 rows" in log
    got = predictions(project, name, project.root / "dl-committed")
    want = expected(load_model(model_dir), sorted(COMMITTED.glob("*.csv")))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    listed = project.json("batch-endpoint", "list-jobs", "-n", "diabetes-batch")
    assert name in [j["name"] for j in listed]
    assert job["outputs"]["score"]["path"].endswith(f"/azureml/{name}/score/")


def test_mlflow_no_code_deployment_matches(ws: tuple[Project, Path]) -> None:
    project, model_dir = ws
    name = invoke(project, "-d", "mlflow", "--input", str(COMMITTED))
    job, log = stream(project, name)
    assert job["status"] == "Completed", log
    got = predictions(project, name, project.root / "dl-mlflow")
    want = expected(load_model(model_dir), sorted(COMMITTED.glob("*.csv")))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)


def test_many_files_then_a_corrupt_one(ws: tuple[Project, Path]) -> None:
    project, model_dir = ws
    folder = project.root / "many"
    folder.mkdir()
    src = pd.read_csv(ROOT / "data" / "diabetes.csv")[FEATURES]
    rng = np.random.default_rng(5)
    for i in range(30):
        src.iloc[rng.integers(0, len(src), 20)].to_csv(folder / f"p-{i:03d}.csv", index=False)
    files = sorted(folder.glob("*.csv"))
    # --output-path is a datastore path, as on Azure (a local folder is refused: nothing a job
    # writes leaves the workspace, hardening II item 1)
    uri = "azureml://datastores/workspaceblobstore/paths/scored"
    out = project.home / "datastores" / "workspaceblobstore" / "scored"
    name = invoke(project, "--input", str(folder), "--mini-batch-size", "4", "--output-path", uri)
    job, log = stream(project, name)
    assert job["status"] == "Completed", log
    assert "8 mini-batch(es)" in log
    got = read_predictions(out / "predictions.csv")  # --output-path is where score goes
    pd.testing.assert_frame_equal(got, expected(load_model(model_dir), files), rtol=1e-12)

    # error_threshold: 0 in deployment.yml: the corrupt file fails its mini-batch (after the
    # retries), is named in the logs, and fails the job.
    (folder / "p-005.csv").write_text("age,sex\n1,2,3\n\x00garbage")
    name = invoke(project, "--input", str(folder), "--mini-batch-size", "4")
    job, log = stream(project, name)
    assert job["status"] == "Failed"
    assert "p-005.csv" in job["error"]["message"] and "error_threshold" in job["error"]["message"]
    assert "p-005.csv" in log
    dl = project.root / "dl-corrupt"
    project.run("job", "download", "-n", name, "-p", str(dl))
    assert "p-005.csv" in (dl / "artifacts" / "logs" / "job_error.txt").read_text()


def test_corrupt_file_tolerated_with_error_threshold_minus_one(ws: tuple[Project, Path]) -> None:
    project, model_dir = ws
    folder = project.root / "tolerant"
    folder.mkdir()
    for f in sorted(COMMITTED.glob("*.csv")):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "diabetes-batch-1.csv").write_text("age,sex\n1,2,3\n")
    project.run(
        "batch-deployment",
        "create",
        "-f",
        str(BATCH / "deployment.yml"),
        "-n",
        "tolerant",
        "--set",
        "settings.error_threshold=-1",
        "--set",
        "settings.retry_settings.max_retries=0",
        "--set",
        "settings.mini_batch_size=1",
        "-o",
        "none",
    )
    name = invoke(project, "-d", "tolerant", "--input", str(folder))
    job, log = stream(project, name)
    assert job["status"] == "Completed", log
    assert job["properties"]["azureml.parallel.items_failed"] == "1"
    assert "diabetes-batch-1.csv" in log
    got = predictions(project, name, project.root / "dl-tolerant")
    good = [f for f in sorted(COMMITTED.glob("*.csv")) if f.name != "diabetes-batch-1.csv"]
    pd.testing.assert_frame_equal(got, expected(load_model(model_dir), good), rtol=1e-12)


def test_hanging_run_is_retried_then_failed_by_timeout(ws: tuple[Project, Path]) -> None:
    project, _ = ws
    folder = project.root / "hang-in"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "hang.csv").write_text("x\n1\n")
    name = invoke(project, "-d", "hang", "--input", str(folder))
    job, log = stream(project, name)
    assert job["status"] == "Failed"
    assert "attempt 1/2 failed: TimeoutError" in log and "attempt 2/2 failed" in log
    assert "hang.csv" in job["error"]["message"]
    assert_no_processes(project.home)


def test_cancel_stops_workers(ws: tuple[Project, Path]) -> None:
    project, _ = ws
    folder = project.root / "hang-cancel"
    folder.mkdir()
    (folder / "hang.csv").write_text("x\n1\n")
    project.write("hang-long.yml", HANG_YML.format(timeout=600).replace("name: hang", "name: slow"))
    project.run("batch-deployment", "create", "-f", "hang-long.yml", "-o", "none")
    name = invoke(project, "-d", "slow", "--input", str(folder))
    wait_status(project, name, {"Running"})
    project.run("job", "cancel", "-n", name)
    assert project.json("job", "show", "-n", name)["status"] == "Canceled"
    assert_no_processes(project.home)


def test_empty_folder_and_no_default_are_clear_errors(ws: tuple[Project, Path]) -> None:
    project, _ = ws
    empty = project.root / "empty"
    empty.mkdir()
    r = project.run(
        "batch-endpoint", "invoke", "-n", "diabetes-batch", "--input", str(empty), check=False
    )
    assert r.returncode != 0 and "empty" in r.stderr and "nothing to score" in r.stderr
    project.run("batch-endpoint", "create", "-n", "bare", "-o", "none")
    r = project.run(
        "batch-endpoint", "invoke", "-n", "bare", "--input", str(COMMITTED), check=False
    )
    assert r.returncode != 0 and "no default deployment" in r.stderr


def test_invoke_imports_neither_azure_ai_ml_nor_mlflow(ws: tuple[Project, Path]) -> None:
    project, _ = ws
    r, imported = project.imports(
        "batch-endpoint", "invoke", "-n", "diabetes-batch", "--input", str(COMMITTED),
        "--query", "name", "-o", "tsv",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not {m for m in imported if m.startswith(("azure", "mlflow", "sklearn", "pandas"))}
    wait_status(project, r.stdout.strip(), {"Completed"})


def test_parallel_pipeline_predicts_what_the_endpoint_does(ws: tuple[Project, Path]) -> None:
    project, _ = ws
    job, r = project.create(str(ROOT / "pipelines" / "batch-score.yml"))
    assert job["status"] == "Completed", r.stderr
    project.run("job", "download", "-n", job["name"], "--output-name", "predictions", "-p", "dlp")
    pipe = read_predictions(
        project.root / "dlp" / "named-outputs" / "predictions" / "predictions.csv"
    )
    name = invoke(project, "--input", str(COMMITTED))
    assert stream(project, name)[0]["status"] == "Completed"
    endpoint = predictions(project, name, project.root / "dl-endpoint")
    pd.testing.assert_frame_equal(pipe, endpoint, check_exact=True)
    # The parallel step shows its mini-batch progress in its log like any step.
    child = project.json("job", "list", "--parent-job-name", job["name"])[0]
    assert child["type"] == "parallel" and child["status"] == "Completed"
    # Rerunning the same pipeline reuses the parallel step (same code, data, model, settings).
    again, _ = project.create(str(ROOT / "pipelines" / "batch-score.yml"))
    child = project.json("job", "list", "--parent-job-name", again["name"])[0]
    assert child["properties"].get("azureml.isreused") == "true"
