"""Stopping a process group: a step's, a worker's, a fork server's (each runs in a session of
its own, so its children go with it and Ctrl-C leaves no orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Protocol

# SIGTERM first, so a step can flush its logs and MLflow run; SIGKILL if it will not go.
GENTLE: tuple[tuple[int, float], ...] = ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0))
AT_ONCE: tuple[tuple[int, float], ...] = ((signal.SIGKILL, 0.0),)


class Waitable(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...


# Linux reads /proc (and has prctl); elsewhere psutil and a watcher thread.
LINUX = sys.platform.startswith("linux")


def alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie does not: a killed detached runner stays one until init
    reaps it, which some inits (containers, sandboxes) do late or never, and `kill(pid, 0)`
    still succeeds on it. Linux: one read of /proc; elsewhere psutil (macOS sysctl). Not
    psutil everywhere: its import costs 20-40 ms, and `online-endpoint invoke` and `job
    show` ask this on every call."""
    if LINUX:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rpartition(b")")[2].split()[0] != b"Z"
        except FileNotFoundError:
            return False
        except (OSError, IndexError):
            return True  # exists, but unreadable
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def runs(pid: int, marker: str) -> bool:
    """Whether `pid` is alive and `marker` (e.g. a `python -m` module) is on its command line:
    a pid recycled by another program is not ours (a zombie's command line is empty)."""
    if LINUX:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return marker.encode() in f.read()
        except OSError:
            return False
    import psutil

    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE and marker in " ".join(proc.cmdline()))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if it is gone. A pid and
    its start time name one process: a recycled pid has another start time."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


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
    """Have this process get `sig` when its parent dies, so a server never outlives the
    supervisor that started it. On Linux the kernel does it (PR_SET_PDEATHSIG); elsewhere
    (macOS) a daemon thread notices the parent change (re-parenting) within half a second.
    Call it from the server's own Python code, not a `preexec_fn`: the thread would not
    survive exec."""
    if LINUX:
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
            return
        except (OSError, AttributeError):
            pass
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
