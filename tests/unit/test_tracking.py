"""The runner's direct SQLite writes must be indistinguishable from MLflow's own."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from amlocal import tracking
from amlocal.guid import guid_hex
from amlocal.workspace import Workspace


@pytest.fixture()
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Workspace(tmp_path / ".amlocal")


def test_schema_revision_is_the_pinned_mlflow_head(tmp_path: Path) -> None:
    """A new store is created by MLflow at its head revision; the direct writer was checked
    against exactly that revision. Failing here means: re-check `_SqliteRuns` against the
    new MLflow's SqlAlchemyStore.create_experiment/create_run/update_run_info, then bump
    SCHEMA_REVISION."""
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()
    assert tracking._revision(tmp_path / "mlflow.db") == tracking.SCHEMA_REVISION


def _dump(db: Path) -> tuple[list, dict]:
    con = sqlite3.connect(db)
    try:
        # Line order inside a CREATE TABLE is not stable even between two stores MLflow
        # creates (its migrations rebuild tables from sets of constraints).
        schema = sorted(
            (kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
            for kind, name, sql in con.execute("SELECT type, name, sql FROM sqlite_master")
        )
        rows = {
            t: con.execute(f'SELECT * FROM "{t}"').fetchall()
            for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    finally:
        con.close()
    return schema, rows


def test_a_new_store_is_mlflows_own_empty_store(ws: Workspace, tmp_path: Path) -> None:
    """A new workspace's store (a copy of the cached template) has MLflow's schema and rows;
    only the Default experiment's artifact location is the workspace's, not ./mlruns."""
    assert tracking._fast(ws) is not None
    ours_schema, ours = _dump(ws.home / "mlflow.db")
    theirs_db = tmp_path / "theirs.db"
    MlflowClient(f"sqlite:///{theirs_db}").search_experiments()
    theirs_schema, theirs = _dump(theirs_db)
    assert ours_schema == theirs_schema
    (exp0,) = ours.pop("experiments")
    (ref0,) = theirs.pop("experiments")
    assert ours == theirs
    assert exp0[:2] == ref0[:2] == (0, "Default") and exp0[3:4] == ref0[3:4] == ("active",)
    assert exp0[2] == (ws.mlflow_artifact_root / "Default").as_uri()
    assert exp0[6] == ref0[6] == "default"
    assert abs(exp0[4] - ref0[4]) < 60_000  # created now, not when the template was


def test_a_template_at_another_revision_is_not_used(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "SCHEMA_REVISION", "somethingelse")
    assert tracking._fast(ws) is None
    assert not (ws.home / "mlflow.db").exists()
    run = tracking.start_run(ws, "exp", "job")  # MLflow creates the store and the run
    assert MlflowClient(ws.mlflow_tracking_uri).get_run(run).info.run_name == "job"


def test_direct_experiments_read_back_like_mlflow_experiments(ws: Workspace) -> None:
    exp_id = tracking.experiment_id(ws, "exp")
    assert tracking.experiment_id(ws, "exp") == exp_id
    client = MlflowClient(ws.mlflow_tracking_uri)
    location = (ws.mlflow_artifact_root / "ref").as_uri()
    ref = client.get_experiment(client.create_experiment("ref", artifact_location=location))
    got = client.get_experiment_by_name("exp")
    assert got.experiment_id == exp_id and int(ref.experiment_id) == int(exp_id) + 1
    assert got.artifact_location == location.replace("/ref", "/exp")
    for field in ("lifecycle_stage", "tags", "workspace"):
        assert getattr(got, field) == getattr(ref, field), field
    assert abs(got.creation_time - ref.creation_time) < 60_000
    assert got.last_update_time == got.creation_time


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


def test_the_template_is_keyed_by_the_schema_head_not_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed MLflow's head (read from its migration files) is the revision MLflow
    creates stores at, and a second install of the same MLflow elsewhere (another clone's
    venv) maps to the same template file: `make setup` there reuses it."""
    import importlib.util
    import shutil

    origin = Path(importlib.util.find_spec("mlflow").origin)  # type: ignore[union-attr,arg-type]
    versions = origin.with_name("store") / "db_migrations" / "versions"
    assert tracking.schema_head(versions) == tracking.SCHEMA_REVISION
    monkeypatch.setenv("AMLOCAL_CACHE_DIR", str(tmp_path / "cache"))
    here = tracking._template_path()
    assert here == tmp_path / "cache" / f"mlflow-store-{tracking.SCHEMA_REVISION}.db"
    other = tmp_path / "clone2" / "site-packages" / "mlflow"
    shutil.copytree(versions, other / "store" / "db_migrations" / "versions")
    shutil.copy(origin.with_name("version.py"), other / "version.py")
    (other / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(other.parent))
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    assert Path(importlib.util.find_spec("mlflow").origin).parent == other  # type: ignore[union-attr,arg-type]
    assert tracking._template_path() == here


def test_the_schema_head_follows_down_revisions_and_merges(tmp_path: Path) -> None:
    def rev(name: str, down: str) -> None:
        (tmp_path / f"{name}_x.py").write_text(f'revision = "{name}"\ndown_revision = {down}\n')

    rev("a1", "None")
    rev("b2", '"a1"')
    assert tracking.schema_head(tmp_path) == "b2"
    rev("c3", '"a1"')
    assert tracking.schema_head(tmp_path) is None  # two heads: no key from the schema
    rev("d4", '("b2", "c3")')
    assert tracking.schema_head(tmp_path) == "d4"


def test_an_unusable_cache_leaves_the_store_to_mlflow(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("AMLOCAL_CACHE_DIR", str(blocker / "cache"))
    assert tracking._fast(ws) is None
    run = tracking.start_run(ws, "exp", "job")
    assert MlflowClient(ws.mlflow_tracking_uri).get_run(run).info.run_name == "job"


def test_model_aliases_read_like_mlflows(ws: Workspace) -> None:
    """tracking.model_alias answers from the store what MLflow's client answers (the deploy
    step's champion lookup, which must not import MLflow on every run)."""
    uri = ws.mlflow_tracking_uri
    run = tracking.start_run(ws, "exp", "train")
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("m")
    for _ in range(3):
        client.create_model_version("m", f"runs:/{run}/model", run_id=run)
    assert tracking.model_alias(ws, "m", "champion") == ""  # not set
    client.set_registered_model_alias("m", "champion", "2")
    assert tracking.model_alias(ws, "m", "champion") == "2"
    client.set_registered_model_alias("m", "champion", "3")
    assert tracking.model_alias(ws, "m", "champion") == "3"
    assert str(client.get_model_version_by_alias("m", "champion").version) == "3"
    assert tracking.model_alias(ws, "absent", "champion") == ""


def test_a_new_store_is_in_wal_mode_and_runs_reuse_one_connection(ws: Workspace) -> None:
    """WAL (kept in the file) lets a kept connection commit without an fsync: before, each
    run start and end opened a connection and paid ~20 ms of fsync on this disk."""
    direct = tracking._fast(ws)
    assert direct is not None
    first = tracking.start_run(ws, "exp", "job")
    tracking.end_run(ws, first, "Completed")
    assert direct._connect() is direct._connect()
    con = sqlite3.connect(ws.home / "mlflow.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        con.close()
    # MLflow itself reads what the kept connection wrote
    assert MlflowClient(ws.mlflow_tracking_uri).get_run(first).info.status == "FINISHED"


@pytest.mark.subprocess
def test_a_forked_process_opens_its_own_connection(ws: Workspace) -> None:
    """SQLite forbids using a connection across fork(); the daemons fork from the CLI."""
    import os

    direct = tracking._fast(ws)
    assert direct is not None
    parent = direct._connect()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report whether it got a different connection, then exit at once
        os.write(w, b"1" if direct._connect() is not parent else b"0")
        os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"


def test_run_ids_are_uuid4_hex_as_mlflow_makes_them() -> None:
    import uuid

    ids = {guid_hex() for _ in range(200)}
    assert len(ids) == 200
    for h in ids:
        u = uuid.UUID(hex=h)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and u.hex == h


@pytest.mark.subprocess
def test_make_setup_makes_the_template_once_then_reuses_it(tmp_path: Path) -> None:
    """`python -m amlocal.tracking` (make setup) in a second clone finds the template."""
    import os
    import subprocess

    env = {**os.environ, "AMLOCAL_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.run(
            [sys.executable, "-m", "amlocal.tracking"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        for _ in range(2)
    ]
    template = tmp_path / "cache" / f"mlflow-store-{tracking.SCHEMA_REVISION}.db"
    assert runs[0].strip().endswith(f"{template} (made)"), runs[0]
    made = template.stat().st_mtime_ns
    assert runs[1].strip().endswith(f"{template} (reused)"), runs[1]
    assert template.stat().st_mtime_ns == made
