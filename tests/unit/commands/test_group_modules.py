"""Loading every group (`build_parser()` without one, as help and the workflow checks do)
leaves the groups' shared helpers intact, in any order of imports in one process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import amlocal.commands
from amlocal.cli import GROUPS, build_parser, main
from amlocal.workspace import Workspace


def test_the_workspace_helper_survives_loading_every_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLOCAL_HOME", str(tmp_path / ".amlocal"))
    build_parser()
    assert isinstance(amlocal.commands.workspace(), Workspace)


@pytest.mark.parametrize("group", ["compute", "online-endpoint", "batch-endpoint", "schedule"])
def test_a_group_imported_after_every_group_runs_in_process(
    group: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The order that failed with `'module' object is not callable`: all groups loaded,
    then a group module imported afresh (as in a test session that had not imported it)."""
    monkeypatch.setenv("AMLOCAL_HOME", str(tmp_path / ".amlocal"))
    build_parser()
    monkeypatch.delitem(sys.modules, GROUPS[group][0])
    assert main([group, "list", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
