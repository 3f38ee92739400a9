"""The in-process tier's promise, kept: under `make test-unit` (`-m "not subprocess"`) a
tests/unit test that starts a process fails and says to mark it `subprocess`. Elsewhere
(`make test`) nothing is patched."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _in_process_only(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    tier = request.config.getoption("markexpr", "") or ""
    if "not subprocess" not in tier or request.node.get_closest_marker("subprocess"):
        yield
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"{request.node.nodeid} starts a process: mark it @pytest.mark.subprocess "
            "(make test-unit is the in-process tier)"
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    yield
