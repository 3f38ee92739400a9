"""The small defects of issue 20 (item 9 and parts of 7), each as a short test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from amlocal import state
from amlocal.endpoints import paths
from amlocal.endpoints.daemon import main as daemon


@pytest.mark.subprocess
def test_a_non_utf8_yaml_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "job.yml"
    bad.write_bytes(
        b"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        b'command: echo hi\nenvironment: azureml:x:1\ndescription: "\xff\xfe caf\xe9"\n'
    )
    env = {**os.environ, "AMLOCAL_HOME": str(tmp_path / ".amlocal")}
    env.pop("MLFLOW_TRACKING_URI", None)
    r = subprocess.run(
        [sys.executable, "-m", "amlocal.cli", "job", "create", "-f", str(bad)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert str(bad) in r.stderr and "UTF-8" in r.stderr


def test_a_damaged_instances_file_does_not_stop_the_front_door(tmp_path: Path) -> None:
    state = paths.endpoint_dir(tmp_path, "my-endpoint")
    state.mkdir(parents=True)
    for damage in ("5", '{"a": 1}', '["x", -1, null]', "not json"):
        (state / "instances.json").write_text(damage)
        daemon.reap_stale(state)  # raised TypeError on `5` before: the daemon never started


def test_state_files_are_replaced_whole(tmp_path: Path) -> None:
    f = tmp_path / "daemon.json"
    state.write_json(f, {"pid": 1})
    state.write_json(f, {"pid": 2})
    assert f.read_text() == '{"pid": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["daemon.json"]
    assert f.stat().st_mode & 0o777 == 0o600
