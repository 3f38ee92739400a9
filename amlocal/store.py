"""The workspace store: one SQLite file holding every record amlocal keeps.

Records are JSON documents keyed by (kind, name, version). SQLite in WAL mode with
`BEGIN IMMEDIATE` for read-modify-write gives atomic updates across processes, so two
jobs (or a job and a `job cancel` from another shell) never corrupt each other.

A store is created whole (schema in a temporary file, then linked into place), so a store
file that exists but is empty, is not SQLite, or lacks the schema is damage, not a new
workspace: it is refused with a message naming the file and what to do, instead of being
silently replaced by an empty one (or failing with a raw sqlite traceback).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from amlocal import names
from amlocal.errors import AmlocalError, DiskFull, NotFound, disk_full

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    parent TEXT,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE INDEX IF NOT EXISTS records_parent ON records(kind, parent);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


class StoreDamaged(AmlocalError):
    """A state database exists but is empty, unreadable or without its schema."""


def read_rows(con: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of one query on a connection opened for it, closed after: the quick reads of
    a SQLite file (this store's schema check, MLflow's runs and registry read without MLflow)
    keep no connection open."""
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def read_row(con: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first row of one query (None when there is none), closing `con` as read_rows."""
    rows = read_rows(con, sql, params)
    return rows[0] if rows else None


def require_schema(path: Path, table: str, what: str) -> None:
    """Refuse `path` unless it is an SQLite database holding `table`."""
    advice = (
        f"{what} {path} is {{}}; amlocal will not replace it with an empty one. Move it aside "
        f"(keep a copy if it matters) and run again to start afresh, or `make clean` to "
        f"remove the whole local workspace."
    )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StoreDamaged(advice.format(f"unreadable ({exc.strerror})")) from None
    if size == 0:
        raise StoreDamaged(advice.format("empty (0 bytes)"))
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        found = read_row(con, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,))
    except sqlite3.Error as exc:
        if _sqlite_header(path):
            raise unusable(path, what, exc) from None
        raise StoreDamaged(advice.format(f"not a readable SQLite database ({exc})")) from None
    if not found:
        raise StoreDamaged(advice.format(f"missing its '{table}' table"))


def _sqlite_header(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def unusable(path: Path, what: str, exc: Exception) -> AmlocalError:
    """An SQLite file that cannot be opened now (the disk is full: SQLite cannot make its
    shared-memory file; a lock; an I/O error) is not damaged: no advice to move it aside."""
    import shutil

    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = -1
    if free == 0 or disk_full(exc):
        return DiskFull(
            f"{what} {path} cannot be opened: the disk holding it is full ({exc}). The file is "
            "intact and was not changed; free some space and run the command again."
        )
    return AmlocalError(
        f"{what} {path} cannot be opened now ({exc}); it was not changed. Run the command "
        "again; if this persists, check the disk and the file's permissions."
    )


class Store:
    """JSON records in SQLite, safe for concurrent processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        if not path.exists():
            self._create()
        require_schema(path, "records", "the workspace store")
        try:
            self._conn.executescript(_SCHEMA)  # tables added since the store was made
        except sqlite3.OperationalError as exc:  # full disk, locked, I/O: not damage
            self.close()
            raise unusable(path, "the workspace store", exc) from None
        except sqlite3.DatabaseError as exc:
            raise StoreDamaged(
                f"the workspace store {path} cannot be used ({exc}); move it aside or "
                f"`make clean` to start afresh"
            ) from None

    def _create(self) -> None:
        """Build the schema in a private file and link it into place: no other process ever
        sees a half-made store, and a racing creator's store is kept."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            con = sqlite3.connect(tmp)
            try:
                con.executescript(_SCHEMA)
                con.commit()
            finally:
                con.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @property
    def _conn(self) -> sqlite3.Connection:
        """One connection per thread: a transaction belongs to one connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: the write lock is taken up front, so updates never race."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:  # an error such as SQLITE_FULL may have ended it
                self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
                self._conn.execute("ROLLBACK")
            if disk_full(exc):
                raise DiskFull(
                    f"the workspace store {self.path} could not be written: the disk holding it "
                    "is full. Nothing of this change was recorded; free some space and run the "
                    "command again."
                ) from exc
            raise

    def put_many(self, kind: str, rows: list[tuple[str, dict[str, Any], str | None]]) -> None:
        """(name, data, parent) records written in one transaction: all of them or none (a
        pipeline and its steps are submitted together, never half)."""
        self._upsert(kind, [(n, "", d, p) for n, d, p in rows])

    def _upsert(self, kind: str, rows: list[tuple[str, str, dict[str, Any], str | None]]) -> None:
        """(name, version, data, parent) records, checked, then written in one transaction."""
        for name, version, _, _ in rows:
            names.record(kind, name, version)
        now = time.time()
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO records(kind,name,version,parent,data,created,updated) "
                "VALUES(?,?,?,?,?,?,?) ON CONFLICT(kind,name,version) DO UPDATE SET "
                "data=excluded.data, parent=excluded.parent, updated=excluded.updated",
                [(kind, n, v, p, json.dumps(d), now, now) for n, v, d, p in rows],
            )

    # -- records -----------------------------------------------------------------------
    def put(
        self,
        kind: str,
        name: str,
        data: dict[str, Any],
        *,
        version: str = "",
        parent: str | None = None,
    ) -> None:
        self._upsert(kind, [(name, version, data, parent)])

    def insert_new(self, kind: str, name: str, data: dict[str, Any], *, version: str = "") -> bool:
        """Insert only if absent; False when the record exists (names and versions are immutable)."""
        names.record(kind, name, version)
        now = time.time()
        with self.transaction() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO records(kind,name,version,parent,data,created,updated) "
                "VALUES(?,?,?,?,?,?,?)",
                (kind, name, version, None, json.dumps(data), now, now),
            )
            return cur.rowcount == 1

    def get(self, kind: str, name: str, *, version: str = "") -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT data FROM records WHERE kind=? AND name=? AND version=?",
            (kind, name, version),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def require(self, kind: str, name: str, missing: str) -> dict[str, Any]:
        """The record, or NotFound saying `missing` (az ml's wording for that kind): every
        `show`, `delete` and lookup of a named endpoint, deployment, job or compute."""
        rec = self.get(kind, name)
        if rec is None:
            raise NotFound(missing)
        return rec

    def update(
        self,
        kind: str,
        name: str,
        fn: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        version: str = "",
    ) -> dict[str, Any] | None:
        """Read-modify-write under the write lock; `fn` may mutate in place or return a dict."""
        with self.transaction() as c:
            row = c.execute(
                "SELECT data FROM records WHERE kind=? AND name=? AND version=?",
                (kind, name, version),
            ).fetchone()
            if row is None:
                return None
            data = json.loads(row[0])
            new = fn(data)
            data = data if new is None else new
            c.execute(
                "UPDATE records SET data=?, updated=? WHERE kind=? AND name=? AND version=?",
                (json.dumps(data), time.time(), kind, name, version),
            )
            return data

    def delete(self, kind: str, name: str, *, version: str = "") -> bool:
        with self.transaction() as c:
            cur = c.execute(
                "DELETE FROM records WHERE kind=? AND name=? AND version=?", (kind, name, version)
            )
            return cur.rowcount > 0

    def list(
        self, kind: str, *, name: str | None = None, parent: str | None = None
    ) -> list[dict[str, Any]]:
        """Records of a kind, oldest first; filter by name (all versions) or parent."""
        sql, args = "SELECT data FROM records WHERE kind=?", [kind]
        if name is not None:
            sql, args = sql + " AND name=?", [*args, name]
        if parent is not None:
            sql, args = sql + " AND parent=?", [*args, parent]
        rows = self._conn.execute(sql + " ORDER BY created, rowid", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def versions(self, kind: str, name: str) -> builtins.list[str]:
        rows = self._conn.execute(
            "SELECT version FROM records WHERE kind=? AND name=? ORDER BY created, rowid",
            (kind, name),
        ).fetchall()
        return [r[0] for r in rows]

    # -- cache (content hashes, validated plans, reuse index) ---------------------------
    def cache_get(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM cache WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def cache_put(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO cache(key,value,updated) VALUES(?,?,?) ON CONFLICT(key) DO UPDATE "
                "SET value=excluded.value, updated=excluded.updated",
                (key, json.dumps(value), time.time()),
            )

    def cache_delete(self, key: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM cache WHERE key=?", (key,))
