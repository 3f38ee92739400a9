"""The runner's disk reserve (1 MiB kept aside to record a disk-full failure): it is made
where the platform has posix_fallocate (Linux) and where it has not (macOS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amlocal.jobs import runner


@pytest.mark.parametrize("fallocate", [True, False], ids=["posix_fallocate", "macos"])
def test_the_reserve_is_kept_with_or_without_posix_fallocate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallocate: bool
) -> None:
    if not fallocate:
        monkeypatch.delattr(os, "posix_fallocate", raising=False)
    elif not hasattr(os, "posix_fallocate"):
        pytest.skip("this platform has no posix_fallocate")
    reserve = runner._reserve(tmp_path / ".reserve")
    assert reserve.stat().st_size == runner.RESERVE_BYTES
