"""MLflow runs for jobs: one run per job, pipeline steps nested, created before a step starts
and exported through MLFLOW_RUN_ID, as Azure ML does, so scripts log without `start_run`.

Importing MLflow and opening its SQLAlchemy store costs about 3 s per process, which would be
most of a small pipeline's wall time. So the runner writes its runs (create, terminate,
./outputs artifacts) straight into the workspace's SQLite store with the rows MLflow's own
`SqlAlchemyStore.create_run` / `update_run_info` write, and only when the store's schema is
the revision those rows were checked against (`SCHEMA_REVISION`; a test fails when the pinned
MLflow moves on). A new workspace's store is a copy of an empty store that the installed
MLflow made once per user (creating one imports MLflow and runs its ~100 migrations: about
4 s before a new workspace's first job could start). Anything else (another tracking URI, a
deleted experiment, the model registry) goes through `MlflowClient`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from amlocal.guid import guid_hex
from amlocal.workspace import Workspace

# alembic revision of MLflow's tracking schema that `_SqliteRuns` writes (mlflow==3.15.0).
SCHEMA_REVISION = "6f8d9c3b2a1e"

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_direct: dict[str, _SqliteRuns | None] = {}


def client(ws: Workspace) -> Any:
    """An MlflowClient on the workspace's tracking store (and registry).

    No process-wide state is touched (no MLFLOW_TRACKING_URI, no mlflow.set_tracking_uri):
    two workspaces, or a workspace and a user's own MLflow calls, can share a process.
    """
    uri = ws.mlflow_tracking_uri
    with _lock:
        if uri not in _clients:
            _check_local_store(ws, uri)
            from mlflow.tracking import MlflowClient

            for noisy in ("mlflow", "mlflow.store.db.utils", "alembic"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _clients[uri]


class _SqliteRuns:
    """Run rows written (and model versions read) with sqlite3, as SqlAlchemyStore does."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection, kept open: in WAL mode a commit then costs ~0.03 ms,
        where a connection per write paid an fsync each (~20 ms here; 4 per one-step job).
        Closing the last connection checkpoints, once, at exit."""
        con, pid = getattr(self._local, "con", (None, 0))
        if con is None or pid != os.getpid():  # a forked daemon must not share the parent's
            con = sqlite3.connect(self.db, timeout=60)
            con.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints
            self._local.con = (con, os.getpid())
        return con

    def experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact_location) of an active experiment in the default MLflow workspace."""
        con = self._connect()
        rows = con.execute(
            "SELECT experiment_id, artifact_location, lifecycle_stage, workspace"
            " FROM experiments WHERE name = ?",
            (name,),
        ).fetchall()
        if len(rows) != 1 or rows[0][2] != "active" or rows[0][3] != "default" or not rows[0][1]:
            return None
        return str(rows[0][0]), rows[0][1]

    def create_experiment(self, name: str, artifact_location: str) -> tuple[str, str] | None:
        """The row SqlAlchemyStore.create_experiment inserts; None leaves it to MLflow (an
        invalid name, or a name that exists but is deleted)."""
        if not 0 < len(name) <= 256 or len(artifact_location) > 2048:
            return None
        now = int(time.time() * 1000)
        con = self._connect()
        try:
            with con:
                cur = con.execute(
                    "INSERT INTO experiments (name, artifact_location, lifecycle_stage,"
                    " creation_time, last_update_time, workspace)"
                    " VALUES (?, ?, 'active', ?, ?, 'default')",
                    (name, artifact_location, now, now),
                )
            return str(cur.lastrowid), artifact_location
        except sqlite3.IntegrityError:  # created meanwhile by another process, or deleted
            return self.experiment(name)

    def create_run(self, experiment: tuple[str, str], run_name: str, tags: dict[str, str]) -> str:
        exp_id, location = experiment
        run_id = guid_hex()  # MLflow's form: uuid.uuid4().hex
        artifact_uri = f"{location.rstrip('/')}/{run_id}/artifacts"
        con = self._connect()
        with con:
            con.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name,"
                " entry_point_name, user_id, status, start_time, end_time, source_version,"
                " lifecycle_stage, artifact_uri, experiment_id, deleted_time)"
                " VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?,"
                " NULL)",
                (
                    run_id,
                    run_name,
                    tags.get("mlflow.user", "unknown"),
                    int(time.time() * 1000),
                    artifact_uri,
                    int(exp_id),
                ),
            )
            con.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in tags.items()],
            )
        return run_id

    def terminate(self, run_id: str, status: str) -> bool:
        con = self._connect()
        with con:
            cur = con.execute(
                "UPDATE runs SET status = ?, end_time = ?"
                " WHERE run_uuid = ? AND lifecycle_stage = 'active'",
                (status, int(time.time() * 1000), run_id),
            )
            return cur.rowcount == 1

    def artifact_dir(self, run_id: str) -> Path | None:
        """The run's artifact folder when its artifact URI is a local file:// URI."""
        con = self._connect()
        row = con.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if not row or not row[0].startswith("file://"):
            return None
        parsed = urlparse(row[0])
        return None if parsed.netloc else Path(unquote(parsed.path))

    def model_versions(self, name: str) -> dict[str, str]:
        """{version: files URI} of the READY versions of a registered model."""
        con = self._connect()
        rows = con.execute(
            "SELECT version, storage_location, source FROM model_versions"
            " WHERE name = ? AND workspace = 'default' AND status = 'READY'"
            " AND current_stage != 'Deleted_Internal'",
            (name,),
        ).fetchall()
        return {str(v): (loc or src or "") for v, loc, src in rows}


def _check_local_store(ws: Workspace, uri: str) -> None:
    """The workspace's own MLflow store, once it exists, must hold MLflow's schema: an
    emptied or damaged mlflow.db is refused, not silently made a new empty registry."""
    db = _sqlite_path(uri)
    if db is not None and db.exists() and db.resolve() == (ws.home / "mlflow.db").resolve():
        from amlocal.store import require_schema

        require_schema(db, "experiments", "the MLflow tracking store")


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    return Path(uri[len("sqlite:///") :])


def _fast(ws: Workspace) -> _SqliteRuns | None:
    """The direct writer for this workspace's store, or None when MLflow must do the work."""
    uri = ws.mlflow_tracking_uri
    with _lock:
        if _direct.get(uri) is not None:
            return _direct[uri]
        db = _sqlite_path(uri)
        direct = None
        if db is not None and not db.exists() and db.resolve() == (ws.home / "mlflow.db").resolve():
            try:
                _new_store(ws, db)
            except (OSError, sqlite3.Error) as exc:  # a read-only cache, say: MLflow makes it
                logging.getLogger(__name__).debug("no store from the template: %s", exc)
        _check_local_store(ws, uri)
        if db is not None and db.is_file() and _revision(db) == SCHEMA_REVISION:
            direct = _SqliteRuns(db)
        _direct[uri] = direct  # None is retried next time: the store may exist by then
        return direct


def _revision(db: Path) -> str | None:
    from amlocal.store import read_row

    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        row = read_row(con, "SELECT version_num FROM alembic_version")
    except sqlite3.Error:
        return None
    return row[0] if row else None


def schema_head(versions: Path) -> str | None:
    """The alembic head revision of MLflow's migrations in `versions` (the one revision no
    other names as its down_revision), read from the files without importing MLflow."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        files = sorted(versions.glob("*.py"))
        for f in files:
            text = f.read_text(encoding="utf-8", errors="replace")
            rev = re.search(r"^revision\s*=\s*['\"]([0-9a-zA-Z_]+)['\"]", text, re.M)
            down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
            if rev:
                revisions.add(rev.group(1))
            if down:
                parents.update(re.findall(r"['\"]([0-9a-zA-Z_]+)['\"]", down.group(1)))
    except OSError:
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _template_path() -> Path | None:
    """Where the empty store of the installed MLflow is cached: keyed by its schema's alembic
    head revision, not by where MLflow is installed, so every venv and clone of this user with
    an MLflow at that schema shares one (made once; `make setup` in a new clone reuses it)."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.origin:
        return None
    from amlocal.loader import cache_dir

    origin = Path(spec.origin)
    head = schema_head(origin.with_name("store") / "db_migrations" / "versions")
    if head is not None:
        return cache_dir() / f"mlflow-store-{head}.db"
    try:  # an MLflow laid out differently: its version file, still not its location
        version = origin.with_name("version.py").read_bytes()
    except OSError:
        return None
    return cache_dir() / f"mlflow-store-v{hashlib.sha256(version).hexdigest()[:16]}.db"


def store_template() -> Path | None:
    """The installed MLflow's empty store, made on first use (or by `make setup`)."""
    template = _template_path()
    if template is None:
        return None
    if not template.is_file():
        template.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        tmp_dir = Path(tempfile.mkdtemp(prefix=".mlflow-store-", dir=template.parent))
        try:
            from mlflow.tracking import MlflowClient

            for noisy in ("mlflow", "mlflow.store.db.utils", "alembic"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            MlflowClient(tracking_uri=f"sqlite:///{tmp_dir / 'mlflow.db'}").search_experiments()
            os.replace(tmp_dir / "mlflow.db", template)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return template


def _new_store(ws: Workspace, db: Path) -> None:
    """Create the workspace's store as a copy of the cached empty one. Only a template at
    SCHEMA_REVISION is used; otherwise MLflow creates the store."""
    template = store_template()
    if template is None or _revision(template) != SCHEMA_REVISION:
        return
    tmp = db.with_name(f".{db.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        shutil.copyfile(template, tmp)
        now = int(time.time() * 1000)
        con = sqlite3.connect(tmp)
        try:
            with con:  # MLflow would point Default at ./mlruns of whatever the cwd was
                con.execute(
                    "UPDATE experiments SET artifact_location = ?, creation_time = ?,"
                    " last_update_time = ? WHERE experiment_id = 0",
                    ((ws.mlflow_artifact_root / "Default").as_uri(), now, now),
                )
            # WAL (kept in the file): a commit on a kept connection needs no fsync, and
            # readers (the UI, a deploy step) never block the runner's writes.
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
        with contextlib.suppress(FileExistsError):  # another process made it first: keep it
            os.link(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def direct_writes(ws: Workspace) -> bool:
    """Whether runs are written without MLflow (False: the next run imports it)."""
    return _fast(ws) is not None


def download_model(ws: Workspace, name: str, version: str, dest: str) -> None:
    """Download a registered model version's files from the workspace's registry.

    MLflow resolves `models:/` through its process-wide URIs whatever is passed in, so they
    are set for the download only and restored after (unset stays unset, so a later
    MLFLOW_TRACKING_URI still wins).
    """
    direct = _fast(ws)
    files = _local_dir((direct.model_versions(name) if direct else {}).get(str(version), ""))
    if files is not None:  # a file:// store: what download_artifacts would copy
        shutil.copytree(files, dest, dirs_exist_ok=True)
        return
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.artifacts import download_artifacts

    uri = ws.mlflow_tracking_uri
    with _lock:
        saved = tracking_utils._tracking_uri, registry_utils._registry_uri
        tracking_utils._tracking_uri, registry_utils._registry_uri = uri, uri
        try:
            download_artifacts(
                artifact_uri=f"models:/{name}/{version}",
                dst_path=dest,
                tracking_uri=uri,
                registry_uri=uri,
            )
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved


def model_versions(ws: Workspace, name: str) -> list[str] | None:
    """The READY versions of registered model `name` read straight from the store, or None
    when only MLflow can answer (another store or schema)."""
    direct = _fast(ws)
    return sorted(direct.model_versions(name), key=int) if direct else None


def model_alias(ws: Workspace, name: str, alias: str) -> str | None:
    """The version `alias` of registered model `name` points at, read straight from the
    store ("" when the alias is not set); None when only MLflow can answer. A deploy step
    asks this on every run, and MLflow's import alone takes seconds."""
    direct = _fast(ws)
    if direct is None:
        return None
    con = direct._connect()
    row = con.execute(
        "SELECT version FROM registered_model_aliases"
        " WHERE name = ? AND alias = ? AND workspace = 'default'",
        (name, alias),
    ).fetchone()
    return str(row[0]) if row else ""


def model_location(ws: Workspace, name: str, version: str) -> str | None:
    """Where a model version's files are stored, read straight from the store (None: ask
    MLflow)."""
    direct = _fast(ws)
    return (direct.model_versions(name) if direct else {}).get(str(version))


def model_version_rows(ws: Workspace, name: str) -> list[tuple[int, str | None]] | None:
    """(MLflow version, its `azureml.version` tag or None) of the READY versions of `name`,
    oldest first, read straight from the store; None when only MLflow can answer."""
    direct = _fast(ws)
    if direct is None:
        return None
    rows = (
        direct._connect()
        .execute(
            "SELECT v.version, t.value FROM model_versions v LEFT JOIN model_version_tags t"
            " ON t.workspace = v.workspace AND t.name = v.name AND t.version = v.version"
            " AND t.key = 'azureml.version'"
            " WHERE v.name = ? AND v.workspace = 'default' AND v.status = 'READY'"
            " AND v.current_stage != 'Deleted_Internal' ORDER BY v.version",
            (name,),
        )
        .fetchall()
    )
    return [(int(v), tag) for v, tag in rows]


def max_model_version(ws: Workspace, name: str) -> int | None:
    """The highest version MLflow has numbered for `name`, deleted ones included (the next
    version is this + 1); None when only MLflow can answer."""
    direct = _fast(ws)
    if direct is None:
        return None
    con = direct._connect()
    row = con.execute(
        "SELECT MAX(version) FROM model_versions WHERE name = ? AND workspace = 'default'",
        (name,),
    ).fetchone()
    return int(row[0] or 0)


def _local_dir(uri: str) -> Path | None:
    """The folder a local artifact location names (`file:///...` or an absolute path)."""
    if uri.startswith("/"):
        path = Path(uri)
    elif uri.startswith("file://") and not urlparse(uri).netloc:
        path = Path(unquote(urlparse(uri).path))
    else:
        return None
    return path if path.is_dir() else None


def _experiment(ws: Workspace, direct: _SqliteRuns | None, name: str) -> tuple[str, str] | None:
    """(id, artifact_location) of an experiment found or created without MLflow, else None."""
    if direct is None:
        return None
    return direct.experiment(name) or direct.create_experiment(
        name, ws.under("mlartifacts", name).as_uri()
    )


def experiment_id(ws: Workspace, name: str) -> str:
    found = _experiment(ws, _fast(ws), name)
    if found:
        return found[0]
    c = client(ws)
    with _lock:
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        artifact_location = None
        if ws.mlflow_tracking_uri.startswith("sqlite:"):
            # sqlite stores default to ./mlruns in the cwd; keep artifacts in the workspace.
            artifact_location = ws.under("mlartifacts", name).as_uri()
        try:
            return c.create_experiment(name, artifact_location=artifact_location)
        except Exception:  # created concurrently by another process
            return c.get_experiment_by_name(name).experiment_id


def start_run(
    ws: Workspace,
    experiment: str,
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    all_tags = {"mlflow.runName": run_name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    direct = _fast(ws)
    found = _experiment(ws, direct, experiment)
    if direct and found:
        return direct.create_run(found, run_name, all_tags)
    c = client(ws)
    run = c.create_run(experiment_id(ws, experiment), run_name=run_name, tags=all_tags)
    return run.info.run_id


def end_run(ws: Workspace, run_id: str, status: str) -> None:
    """Map an Azure ML job status to MLflow's run status."""
    mlflow_status = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}.get(
        status, "FAILED"
    )
    direct = _fast(ws)
    if direct and direct.terminate(run_id, mlflow_status):
        return
    client(ws).set_terminated(run_id, mlflow_status)


def run_artifact_dir(ws: Workspace, run_id: str) -> Path | None:
    """The run's artifact folder when the store is the workspace's own (local) one."""
    direct = _fast(ws)
    return direct.artifact_dir(run_id) if direct else None


def log_outputs_dir(ws: Workspace, run_id: str, path: str) -> None:
    """Azure ML uploads ./outputs of a command job as run artifacts under outputs/."""
    direct = _fast(ws)
    target = direct.artifact_dir(run_id) if direct else None
    if target is not None:
        shutil.copytree(path, target / "outputs", dirs_exist_ok=True)
        return
    client(ws).log_artifacts(run_id, path, artifact_path="outputs")


def run_metrics(ws: Workspace, run_id: str) -> dict[str, float]:
    """A run's latest metrics (read straight from the store when it is local)."""
    direct = _fast(ws)
    if direct is not None:
        rows = direct._connect().execute(
            "SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)
        )
        return {str(k): float(v) for k, v in rows}
    return dict(client(ws).get_run(run_id).data.metrics)


def log_summary(
    ws: Workspace, run_id: str, params: dict[str, str], metrics: dict[str, float]
) -> None:
    """Params and metrics (step 0, now) on a run: a pipeline's inputs and its steps' metrics
    on the pipeline's run, so MLflow's runs table and charts compare pipelines."""
    params = {k[:250]: str(v)[:6000] for k, v in params.items()}
    now = int(time.time() * 1000)
    direct = _fast(ws)
    if direct is not None:
        con = direct._connect()
        with con:
            con.executemany(
                "INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in params.items()],
            )
            for key, value in metrics.items():
                row = (key[:250], float(value), now, run_id, 0, 0)
                con.execute(
                    "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
                con.execute(
                    "INSERT OR REPLACE INTO latest_metrics"
                    " (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
        return
    from mlflow.entities import Metric, Param

    client(ws).log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
    )


if __name__ == "__main__":  # `make setup`: pay for the template once, at install time
    try:
        _path = _template_path()
        _had = _path is not None and _path.is_file()
        print(f"amlocal: MLflow store template {store_template()} ({'reused' if _had else 'made'})")
    except (OSError, sqlite3.Error) as exc:  # not fatal: new workspaces then ask MLflow
        print(f"amlocal: warning: no MLflow store template: {exc}")
