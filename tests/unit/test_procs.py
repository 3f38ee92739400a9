"""Process identity, liveness and parent-death through procs.py, the one module with
platform-specific code (#16 item 15: it worked only where /proc and prctl exist)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from amlocal import procs

# Every test here starts processes: the file is not in the in-process tier (make test-unit).
pytestmark = pytest.mark.subprocess


@pytest.fixture(params=["linux", "darwin"])
def platform(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both code paths of procs on this machine: /proc (linux) and psutil (elsewhere)."""
    monkeypatch.setattr(procs, "LINUX", request.param == "linux")
    return str(request.param)


def test_a_zombie_is_not_alive_and_a_reaped_pid_neither(platform: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while procs.alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # exits, stays a zombie until waited for
    assert not procs.alive(child.pid)
    os.kill(child.pid, 0)  # what the old check asked: the zombie still "exists"
    child.wait()
    assert not procs.alive(child.pid)
    assert procs.alive(os.getpid())


def test_runs_matches_the_command_line_not_just_the_pid(platform: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print(1, flush=True); time.sleep(30)", "marker-x"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline()  # exec'd and running
        assert procs.runs(child.pid, "marker-x")
        assert not procs.runs(child.pid, "amlocal.endpoints.daemon.main")
    finally:
        child.kill()
        child.wait()
    assert not procs.runs(child.pid, "marker-x")


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_a_server_dies_with_its_parent(tmp_path: Path, platform: str) -> None:
    """The parent starts a server that calls die_with_parent, then is SIGKILLed; the server
    follows. `darwin` runs the portable path (a thread watching getppid) on this machine, with
    libc.so.6 made unloadable as it is on macOS."""
    server = textwrap.dedent(
        f"""
        import ctypes, os, sys, time
        if {platform!r} == "darwin":  # as on macOS: no libc.so.6, so no prctl
            sys.platform = "darwin"

            def no_libc(*args, **kwargs):
                raise OSError("libc.so.6: cannot open shared object file")

            ctypes.CDLL = no_libc
        from amlocal import procs
        procs.die_with_parent()
        open({str(tmp_path / "ready")!r}, "w").write(str(os.getpid()))
        time.sleep(60)
        """
    )
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {server!r}])
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    ready = tmp_path / "ready"
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(ready.read_text())
    assert procs.alive(pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while procs.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not procs.alive(pid), f"server {pid} outlived its parent on the {platform} path"
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
