"""Stopping a process group: a step's, a worker's, a fork server's (each runs in a session of
its own, so its children go with it and Ctrl-C leaves no orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Protocol

# SIGTERM first, so a step can flush its logs and MLflow run; SIGKILL if it will not go.
GENTLE: tuple[tuple[int, float], ...] = ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0))
AT_ONCE: tuple[tuple[int, float], ...] = ((signal.SIGKILL, 0.0),)


class Waitable(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...


def alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie does not: a killed detached runner stays one until init
    reaps it, which some inits (containers, sandboxes) do late or never, and `kill(pid, 0)`
    still succeeds on it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) is all there is


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False when it is gone (or not ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(
    pgid: int, leader: Waitable | None = None, steps: Sequence[tuple[int, float]] = AT_ONCE
) -> None:
    """Signal the group `steps` by step, waiting each grace period for `leader` to exit,
    then SIGKILL whatever is left of the group (children that outlived their leader)."""
    for sig, grace in steps:
        if not signal_group(pgid, sig):
            return
        if leader is None:
            break
        try:
            leader.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    signal_group(pgid, signal.SIGKILL)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send this process `sig` when its parent dies (PR_SET_PDEATHSIG), so a
    server never outlives the supervisor that started it. Elsewhere a no-op: the
    supervisor's own clean-up still applies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
    except (OSError, AttributeError):
        pass
