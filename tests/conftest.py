"""Fixtures every test folder shares (one layer: test files import helpers from the support
modules beside this file, never from a conftest).

The suite runs in parallel (`make test`: pytest-xdist, one process per worker); a session
fixture here is built once per worker. Tests own their ports (free ones, from the OS), their
AMLOCAL_HOME and their temporary folders; what must run alone is marked `serial` and runs
after the parallel pass (tests/README.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cli_support import ENV_YML, Project


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the run's first process (xdist workers inherit)
        _own_resident_servers(config)
    config.addinivalue_line(
        "markers",
        "serial: must run alone, not beside other tests (`make test` runs these after the "
        "parallel pass, one at a time)",
    )
    config.addinivalue_line(
        "markers",
        "subprocess: a tests/unit test that starts a process (`make test-unit`, the in-process "
        "tier, leaves it out; `make test` runs it)",
    )


@pytest.fixture(scope="session")
def _testenv_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with `testenv` registered through the CLI, made once per worker: each
    `project` starts from a copy (the command costs ~2 s of CPU; ~60 tests use it)."""
    seed = Project(tmp_path_factory.mktemp("testenv-seed"))
    seed.write("env.yml", ENV_YML)
    seed.run("environment", "create", "-f", "env.yml")
    return seed.home


@pytest.fixture()
def project(tmp_path: Path, _testenv_home: Path) -> Project:
    """A throwaway project whose workspace has the environment `testenv` registered."""
    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    shutil.copytree(_testenv_home, p.home)
    return p


def _own_resident_servers(config: pytest.Config) -> None:
    """The run's commands fork from resident servers of its own (amlocal.resident), in a
    private folder made here, stopped and removed when the run ends: none is shared with the
    developer's commands, and none outlives the run. A user's AMLOCAL_RESIDENT=0 holds."""
    folder = tempfile.mkdtemp(prefix="amlocal-res-")
    os.environ["AMLOCAL_RESIDENT_DIR"] = folder
    os.environ.setdefault("AMLOCAL_RESIDENT_DEBUG", "1")  # a line per command: counted below

    def stop() -> None:
        import sys
        import time

        from amlocal import procs, resident

        pids = resident.stop()
        deadline = time.monotonic() + 30
        while any(map(procs.alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = [p.read_text(errors="replace") for p in Path(folder).glob("*.log")]
        forked = sum(text.count(" exited ") for text in logs)
        sys.stderr.write(
            f"\nresident servers: {len(logs)}, forked commands and runners: {forked}\n"
        )
        shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(stop)
