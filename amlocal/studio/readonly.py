"""Read-only access to the workspace's two SQLite files: amlocal's records (store.db) and
MLflow's tracking store and registry (mlflow.db), each opened `mode=ro` per request, so the
studio can never write them and never holds a lock a running job waits on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from amlocal import names
from amlocal.errors import InvalidInput


def _connect(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None


def _rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    con = _connect(path)
    if con is None:
        return []
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.Error:  # a store without that table (nothing of the kind yet)
        return []
    finally:
        con.close()


def valid_name(name: str, kind: str = "resource") -> bool:
    """Whether a name from a URL is one Azure ML allows for `kind` (else: a 404, no lookup)."""
    try:
        if kind == "endpoint":
            names.endpoint(name)
        else:
            names.resource(name)
    except InvalidInput:
        return False
    return True


class Records:
    """amlocal's records (jobs, endpoints, deployments, schedules) in store.db."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "store.db"

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        rows = _rows(
            self.path,
            "SELECT data FROM records WHERE kind=? AND name=? AND version=''",
            (kind, name),
        )
        return json.loads(rows[0][0]) if rows else None

    def list(
        self, kind: str, *, parent: str | None = None, top: bool = False
    ) -> list[dict[str, Any]]:
        """Records of a kind, newest first; children of `parent`, or only top-level ones."""
        sql, args = "SELECT data FROM records WHERE kind=?", [kind]
        if parent is not None:
            sql, args = sql + " AND parent=?", [*args, parent]
        elif top:
            sql += " AND parent IS NULL"
        rows = _rows(self.path, sql + " ORDER BY created DESC, rowid DESC LIMIT 2000", tuple(args))
        return [json.loads(r[0]) for r in rows]


class Mlflow:
    """MLflow's SQLite store read with plain SQL (runs, metrics, the model registry)."""

    def __init__(self, tracking_uri: str) -> None:
        db = tracking_uri[len("sqlite:///") :] if tracking_uri.startswith("sqlite:///") else ""
        self.path = Path(db) if db and "?" not in db else Path("/nonexistent/mlflow.db")

    def metrics(self, run_id: str) -> dict[str, float]:
        rows = _rows(
            self.path,
            "SELECT key, value FROM latest_metrics WHERE run_uuid=? ORDER BY key",
            (run_id,),
        )
        return {str(k): float(v) for k, v in rows}

    def params(self, run_id: str) -> dict[str, str]:
        rows = _rows(
            self.path, "SELECT key, value FROM params WHERE run_uuid=? ORDER BY key", (run_id,)
        )
        return {str(k): str(v) for k, v in rows}

    def models(self) -> list[str]:
        return [
            str(r[0]) for r in _rows(self.path, "SELECT name FROM registered_models ORDER BY name")
        ]

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        rows = _rows(
            self.path,
            "SELECT version, creation_time, source, run_id, current_stage, description "
            "FROM model_versions WHERE name=? AND current_stage != 'Deleted_Internal' "
            "ORDER BY version DESC",
            (name,),
        )
        tags: dict[str, dict[str, str]] = {}
        for version, key, value in _rows(
            self.path, "SELECT version, key, value FROM model_version_tags WHERE name=?", (name,)
        ):
            tags.setdefault(str(version), {})[str(key)] = str(value)
        out = []
        for v, created, source, run_id, _stage, description in rows:
            own = dict(tags.get(str(v), {}))
            out.append(
                {  # Azure's version rides on MLflow's number as a tag (assets.model_versions)
                    "version": own.pop("azureml.version", str(v)),
                    "number": str(v),
                    "created": created,
                    "source": source,
                    "run_id": run_id,
                    "description": description,
                    "tags": own,
                }
            )
        return out

    def aliases(self, name: str) -> dict[str, str]:
        rows = _rows(
            self.path, "SELECT alias, version FROM registered_model_aliases WHERE name=?", (name,)
        )
        return {str(a): str(v) for a, v in rows}

    def model_tags(self, name: str) -> dict[str, str]:
        rows = _rows(
            self.path, "SELECT key, value FROM registered_model_tags WHERE name=?", (name,)
        )
        return {str(k): str(v) for k, v in rows}
