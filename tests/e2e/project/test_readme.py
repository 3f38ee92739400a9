"""README commands run as written: one way to call amlocal (on PATH after `source
.venv/bin/activate`, said before its first use), and every amlocal command parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from amlocal.cli import build_parser

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_one_way_to_call_amlocal() -> None:
    assert ".venv/bin/amlocal" not in README
    activate = README.index("source .venv/bin/activate")
    first_use = re.search(r"(?<![\w/.-])amlocal (?!is|takes|reproduces)\S", README)
    assert first_use and activate < first_use.start(), README[: first_use.start()][-200:]


def _commands() -> list[str]:
    found = re.findall(r"(?:`|\$\(|^)(amlocal [^`)\n]+)", README, flags=re.M)
    return [c.strip() for c in found if not c.startswith("amlocal`")]


@pytest.mark.parametrize("command", _commands())
def test_every_amlocal_command_parses(command: str) -> None:
    argv = shlex.split(command.replace("<", "").replace(">", ""))[1:]
    if argv[:1] == ["--version"]:
        return
    build_parser(argv[0]).parse_args(argv)
