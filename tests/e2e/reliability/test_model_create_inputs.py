"""`model create` (issue 32, item 7): a name that is not an Azure resource name is refused
with exit 2 naming it (before: `../../x` gave a traceback and `a b` was accepted), and
racing `--version N` registrations leave version N registered (before: each made
placeholders below N, took a number the other expected and deleted it, burning N)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def env(root: Path) -> dict[str, str]:
    e = {**os.environ, "AMLOCAL_HOME": str(root / ".amlocal")}
    e["AMLOCAL_CACHE_DIR"] = str(root / "cache")
    e.pop("MLFLOW_TRACKING_URI", None)
    return e


def model_create(root: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "amlocal.cli", "model", "create", "--path", "model", *flags],
        cwd=root,
        env=env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.txt").write_text("weights\n")
    return tmp_path


@pytest.mark.parametrize("name", ["../../x", "a b", "x/y"])
def test_a_bad_model_name_is_refused(root: Path, name: str) -> None:
    out, err = model_create(root, "--name", name).communicate(timeout=180)
    assert "Traceback" not in err, err
    assert "invalid model name" in err and repr(name) in err, err
    assert not (root.parent / "x").exists()


def test_racing_explicit_versions_do_not_burn_the_version(root: Path) -> None:
    first = model_create(root, "--name", "r")  # the registry exists before the race
    assert first.wait(timeout=180) == 0, first.communicate()
    racers = [model_create(root, "--name", "r", "--version", "5") for _ in range(4)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in racers]
    assert all(code == 0 for code, _, _ in results), results
    assert {json.loads(out)["version"] for _, out, _ in results} == {"5"}
    shown = subprocess.run(
        [sys.executable, "-m", "amlocal.cli", "model", "show", "-n", "r", "-v", "5"],
        cwd=root,
        env=env(root),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shown.returncode == 0, shown.stderr


def test_racing_a_new_version_with_different_content_one_wins_nothing_burned(root: Path) -> None:
    """Two `model create --version 3` of *different* content started together, on a name
    the registry does not know yet, repeated: each time exactly one exits 0, the other exits 2
    saying version 3 exists, and version 3 is the only version, holding the winner's files.
    Without the per-workspace registration lock the racers both create the registered model
    or both claim 3, and one fails with a traceback or leaves no version 3."""
    for side in ("a", "b"):
        (root / side).mkdir()
        (root / side / "w.txt").write_text(f"weights {side}\n")
    for round_ in range(3):
        name = f"m{round_}"
        racers = {
            side: subprocess.Popen(
                [sys.executable, "-m", "amlocal.cli", "model", "create", "--name", name]
                + ["--version", "3", "--path", side],
                cwd=root,
                env=env(root),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for side in ("a", "b")
        }
        done = {side: (p.wait(timeout=300), *p.communicate()) for side, p in racers.items()}
        codes = sorted(code for code, _, _ in done.values())
        assert codes == [0, 2], done
        winner = next(side for side, (code, _, _) in done.items() if code == 0)
        loser_err = next(err for code, _, err in done.values() if code == 2)
        assert "Traceback" not in loser_err, loser_err
        assert f"model {name}:3 already exists with different content" in loser_err, loser_err
        listed = subprocess.run(
            [sys.executable, "-m", "amlocal.cli", "model", "list", "-n", name],
            cwd=root,
            env=env(root),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert listed.returncode == 0, listed.stderr
        assert [m["version"] for m in json.loads(listed.stdout)] == ["3"], listed.stdout
    got = root / "dl"  # the last round's version 3 is usable: its files come back
    download = subprocess.run(
        [sys.executable, "-m", "amlocal.cli", "model", "download", "-n", name, "-v", "3"]
        + ["--download-path", str(got)],
        cwd=root,
        env=env(root),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert download.returncode == 0, download.stderr
    files = list(got.rglob("w.txt"))
    assert [f.read_text() for f in files] == [f"weights {winner}\n"], files
