"""A restarted daemon stops the instances its predecessor left behind, and only those: an
instance is known by its pid and the time that process started, not by a module name on a
command line (any endpoint's instance, or one started by another amlocal version, has that)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlocal import procs
from amlocal.endpoints.daemon.main import reap_stale

# Each test starts a look-alike process: not in the in-process tier.
pytestmark = pytest.mark.subprocess


@pytest.fixture
def lookalike() -> Iterator[subprocess.Popen[bytes]]:
    """A live process in a session of its own whose command line names the instance module,
    as another endpoint's instance does."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            "amlocal.endpoints.instance.loopback",
        ],
        start_new_session=True,
    )
    yield proc
    procs.stop_group(proc.pid, proc, procs.AT_ONCE)


def _gone(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return True


def _still_runs(proc: subprocess.Popen[bytes]) -> bool:
    time.sleep(0.2)
    return proc.poll() is None


def test_a_recorded_instance_is_stopped(tmp_path: Path, lookalike) -> None:
    started = procs.started(lookalike.pid)
    assert started is not None
    (tmp_path / "instances.json").write_text(
        json.dumps([{"pid": lookalike.pid, "started": started}])
    )
    reap_stale(tmp_path)
    assert _gone(lookalike)


def test_a_pid_alone_is_not_proof_enough(tmp_path: Path, lookalike) -> None:
    """A bare pid (the file of an older daemon, or a damaged one) may name a recycled pid."""
    (tmp_path / "instances.json").write_text(json.dumps([lookalike.pid]))
    reap_stale(tmp_path)
    assert _still_runs(lookalike)


def test_a_recycled_pid_is_not_stopped(tmp_path: Path, lookalike) -> None:
    started = procs.started(lookalike.pid)
    assert started is not None
    record = [{"pid": lookalike.pid, "started": started - 100}]  # an earlier process's pid
    (tmp_path / "instances.json").write_text(json.dumps(record))
    reap_stale(tmp_path)
    assert _still_runs(lookalike)
