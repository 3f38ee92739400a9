"""Detached daemons (an endpoint's front door, the schedule daemon): how the CLI starts one.
Recognising one by its pid is `procs.runs`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def start(module: str, args: list[str], home: Path, log: Path) -> None:
    """Run `python -m <module> <args>` in a session of its own, its output appended to `log`.
    The module forks the daemon and exits at once, so init adopts the daemon (no zombie of
    the CLI, or of pytest) and this returns with nothing left to reap."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        first = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,
            env={**os.environ, "AMLOCAL_HOME": str(home)},
        )
    first.wait()
