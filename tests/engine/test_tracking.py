"""The runner's direct SQLite writes must be indistinguishable from MLflow's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from amlocal import tracking
from amlocal.workspace import Workspace


@pytest.fixture()
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Workspace(tmp_path / ".amlocal")


def test_schema_revision_is_the_pinned_mlflow_head(ws: Workspace) -> None:
    """A new store is created by MLflow at its head revision; the direct writer was checked
    against exactly that revision. Failing here means: re-check `_SqliteRuns` against the
    new MLflow's SqlAlchemyStore.create_run/update_run_info, then bump SCHEMA_REVISION."""
    tracking.experiment_id(ws, "exp")  # creates the store through MlflowClient
    con = sqlite3.connect(ws.home / "mlflow.db")
    (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == tracking.SCHEMA_REVISION
    assert tracking._fast(ws) is not None


def test_direct_runs_read_back_like_mlflow_runs(ws: Workspace, tmp_path: Path) -> None:
    uri = ws.mlflow_tracking_uri
    exp_id = tracking.experiment_id(ws, "exp")
    assert tracking._fast(ws) is not None
    parent = tracking.start_run(ws, "exp", "pipe", tags={"azureml.runType": "pipeline"})
    child = tracking.start_run(ws, "exp", "pipe_s0", parent_run_id=parent, tags={"a": "b"})

    client = MlflowClient(uri)
    reference = client.create_run(
        exp_id,
        run_name="pipe_s0",
        tags={"mlflow.runName": "pipe_s0", "a": "b", "mlflow.parentRunId": parent},
    )
    got, want = client.get_run(child), client.get_run(reference.info.run_id)
    for field in ("experiment_id", "user_id", "status", "lifecycle_stage", "run_name"):
        assert getattr(got.info, field) == getattr(want.info, field), field
    assert got.info.artifact_uri == want.info.artifact_uri.replace(reference.info.run_id, child)
    assert got.data.tags == want.data.tags
    assert abs(got.info.start_time - want.info.start_time) < 60_000

    # A step script logs to the pre-created run with MLflow itself.
    client.log_metric(child, "rmse", 1.5)
    outputs = tmp_path / "outputs"
    (outputs / "sub").mkdir(parents=True)
    (outputs / "sub" / "report.txt").write_text("ok")
    tracking.log_outputs_dir(ws, child, str(outputs))
    tracking.end_run(ws, child, "Failed")
    tracking.end_run(ws, parent, "Completed")
    client.set_terminated(reference.info.run_id, "FAILED")

    got, want = client.get_run(child), client.get_run(reference.info.run_id)
    assert got.info.status == want.info.status == "FAILED"
    assert got.info.end_time >= got.info.start_time
    assert client.get_run(parent).info.status == "FINISHED"
    assert got.data.metrics == {"rmse": 1.5}
    assert [a.path for a in client.list_artifacts(child, "outputs/sub")] == [
        "outputs/sub/report.txt"
    ]
    nested = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert {r.info.run_id for r in nested} == {child, reference.info.run_id}


def test_other_stores_and_experiments_go_through_mlflow(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No store yet: MLflow creates it (and the experiment), the run still lands.
    assert tracking._fast(ws) is None
    run = tracking.start_run(ws, "first", "job")
    assert MlflowClient(ws.mlflow_tracking_uri).get_run(run).info.run_name == "job"
    # A deleted experiment is MLflow's to refuse, not ours to write into.
    client = MlflowClient(ws.mlflow_tracking_uri)
    client.delete_experiment(tracking.experiment_id(ws, "first"))
    with pytest.raises(Exception, match="(?i)deleted|not active|exists"):
        tracking.start_run(ws, "first", "job2")
    # A store at any other schema revision is never written directly.
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
    con.execute("INSERT INTO alembic_version VALUES ('somethingelse')")
    con.commit()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    assert tracking._fast(Workspace(tmp_path / "h2")) is None
    assert tracking._sqlite_path(f"sqlite:///{other}?timeout=5") is None


def test_registered_model_files_read_like_mlflow_downloads(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.artifacts import download_artifacts

    uri = ws.mlflow_tracking_uri
    run = tracking.start_run(ws, "exp", "train")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    client = MlflowClient(uri, registry_uri=uri)
    client.log_artifacts(run, str(model), artifact_path="model")
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", f"runs:/{run}/model", run_id=run)
    assert tracking.model_versions(ws, "m") == ["1", "2"]
    assert tracking.model_versions(ws, "absent") == []

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    tracking.download_model(ws, "m", "2", str(ours))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # models:/ resolves through it
    download_artifacts(artifact_uri="models:/m/2", dst_path=str(theirs))
    listing = sorted(p.relative_to(ours).as_posix() for p in ours.rglob("*"))
    assert listing == sorted(p.relative_to(theirs).as_posix() for p in theirs.rglob("*"))
    assert (ours / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
