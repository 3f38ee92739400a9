"""Names from every source are checked against Azure's rules before they are stored or
become paths, and state paths stay inside the workspace (issue 20, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from amlocal import names
from amlocal.errors import InvalidInput
from amlocal.store import Store

REPO = Path(__file__).resolve().parents[2]


def amlocal(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLOCAL_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "amlocal.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.subprocess
def test_names_from_flags_and_set_are_refused_before_any_path(tmp_path: Path) -> None:
    home = tmp_path / "ws" / ".amlocal"
    online = str(REPO / "endpoints" / "online" / "diabetes" / "endpoint.yml")
    batch = str(REPO / "endpoints" / "batch" / "diabetes" / "endpoint.yml")
    cases = [
        ("online-endpoint", "create", "-f", online, "-n", "../../trav/canary"),
        ("online-endpoint", "create", "-f", online, "-n", "Bad Name!"),
        ("batch-endpoint", "create", "-f", batch, "-n", "../.."),
        ("data", "create", "-f", str(REPO / "data" / "diabetes.yml"), "-n", "../.."),
    ]
    for args in cases:
        r = amlocal(home, *args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr[-2000:])
        assert "invalid" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "trav").exists()
    assert not (home / "endpoints").exists() or not any((home / "endpoints").iterdir())


def test_the_store_refuses_bad_record_names(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    for kind, name in (
        ("online-endpoint", "../x"),
        ("online-endpoint", "ab"),
        ("batch-endpoint", "9lives"),
        ("online-deployment", "good-ep:../bad"),
        ("data", "../.."),
        ("environment", "a/b"),
        ("job", ".hidden"),
    ):
        with pytest.raises(InvalidInput, match="invalid"):
            store.put(kind, name, {})
    store.put("online-endpoint", "good-ep", {})
    store.put("online-deployment", "good-ep:blue", {})
    assert store.insert_new("environment", "AzureML-sklearn-1.0", {}, version="1")


def test_state_paths_stay_under_the_workspace(tmp_path: Path) -> None:
    from amlocal.endpoints import paths

    home = tmp_path / "home"
    (home / "jobs").mkdir(parents=True)
    (home / "jobs" / "escape").symlink_to(tmp_path)
    for bad in ("..", "a/../../b", "", "x\0y"):
        with pytest.raises(InvalidInput):
            names.under(home, "jobs", bad)
    with pytest.raises(InvalidInput, match="outside the workspace"):
        names.under(home, "jobs", "escape")
    with pytest.raises(InvalidInput):
        paths.endpoint_dir(home, "../../trav/canary")
    with pytest.raises(InvalidInput):
        paths.deployment_dir(home, "good-ep", "..")
    assert (
        paths.keys_file(home, "good-ep") == home.resolve() / "endpoints" / "good-ep" / "keys.json"
    )
