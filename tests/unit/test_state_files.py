"""State that survives loss (issue 20, item 7): an emptied or damaged store is refused with a
message naming the file and what to do, never silently replaced by an empty workspace."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from amlocal.store import Store, StoreDamaged

REPO = Path(__file__).resolve().parents[2]


def test_a_new_store_is_created_and_reopened(tmp_path: Path) -> None:
    Store(tmp_path / "store.db").put("job", "j1", {"x": 1})
    assert Store(tmp_path / "store.db").get("job", "j1") == {"x": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("damage", ["empty", "garbage", "foreign"])
def test_a_damaged_store_is_refused_naming_the_file(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "store.db"
    Store(db).put("job", "j1", {})
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:  # a SQLite file without the store's schema
        db.unlink()
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        sqlite3.connect(db).execute("CREATE TABLE other(x)").connection.close()
    with pytest.raises(StoreDamaged) as info:
        Store(db)
    assert str(db) in str(info.value) and "make clean" in str(info.value)


@pytest.mark.subprocess
def test_the_cli_exits_with_the_message_not_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / ".amlocal"
    home.mkdir()
    (home / "store.db").write_bytes(b"")
    env = {**os.environ, "AMLOCAL_HOME": str(home)}
    r = subprocess.run(
        [sys.executable, "-m", "amlocal.cli", "job", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "store.db" in r.stderr and "empty" in r.stderr
    assert (home / "store.db").stat().st_size == 0  # left as found, for the user to inspect


def test_an_emptied_mlflow_store_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlocal import tracking
    from amlocal.workspace import Workspace

    ws = Workspace(tmp_path / "home")
    (ws.home / "mlflow.db").write_bytes(b"")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(StoreDamaged, match="MLflow tracking store .*mlflow.db is empty"):
        tracking.client(ws)
