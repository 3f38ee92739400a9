"""Cancelling a job and reaping one whose runner died: the protocol between the CLI and a
job's runner process (`amlocal.jobs.runner`), which the CLI verbs only call.

A cancel marks the job CancelRequested in the store and sends the runner SIGTERM; the runner
stops its steps' process groups and records Canceled. A runner that is already gone cannot,
so the job is marked Canceled here. A runner that died without finishing (killed, a reboot)
leaves its job Running in the store: whoever reads the job next reaps it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from amlocal import procs
from amlocal.jobs.status import TERMINAL, Status
from amlocal.workspace import Workspace


def request_cancel(ws: Workspace, record: dict[str, Any]) -> None:
    """Ask the job's runner to cancel it (or mark it Canceled if the runner is gone)."""
    name = record["name"]
    ws.store.update("job", name, lambda r: r.update(status="CancelRequested"))
    pid = record.get("_runner_pid")
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            ws.store.update("job", name, lambda r: r.update(status="Canceled"))


def wait_terminal(ws: Workspace, name: str, timeout: float) -> None:
    """Wait until the job is in a terminal state, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = ws.store.get("job", name)
        if record is None or record.get("status") in TERMINAL:
            break
        time.sleep(0.1)


def reap_dead_runner(ws: Workspace, record: dict[str, Any]) -> None:
    """A runner that died without finishing (killed, reboot) leaves a Failed job, not a
    forever-Running one; its steps are reaped with it (running ones Failed, the rest
    Canceled), whichever of the pipeline or its steps is shown."""
    root = record
    while root.get("parent_job_name"):
        parent = ws.store.get("job", root["parent_job_name"])
        if parent is None:
            break
        root = parent
    pid = root.get("_runner_pid")
    if root.get("status") in TERMINAL or not pid or procs.alive(pid):
        return
    error = {"message": runner_death(ws, root["name"])}
    ws.store.update("job", root["name"], _merge({"status": Status.FAILED, "error": error}))
    pending = [root["name"]]
    while pending:
        for child in ws.store.list("job", parent=pending.pop()):
            pending.append(child["name"])
            if child.get("status") not in TERMINAL:
                change: dict[str, Any] = (
                    {"status": Status.FAILED, "error": error}
                    if child.get("status") == Status.RUNNING
                    else {"status": Status.CANCELED}
                )
                ws.store.update("job", child["name"], _merge(change))


def _merge(change: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.update(change)


def runner_death(ws: Workspace, name: str) -> str:
    """Why the runner died, as far as can be told: the last line of its log (its traceback),
    and whether the disk holding the workspace is full (then it could not record the end)."""
    import shutil

    from amlocal.errors import disk_full

    message = "the job's runner process exited unexpectedly"
    last = ""
    try:
        with open(ws.job_dir(name) / "runner.log", "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        last = next((ln for ln in reversed(lines) if ln), "")
    except OSError:
        pass
    try:
        full_now = shutil.disk_usage(ws.home).free == 0
    except OSError:
        full_now = False
    if disk_full(Exception(last)) or full_now:
        message += (
            f": the disk holding the workspace {'is' if full_now else 'was'} full, so it could "
            "not record the job's end"
        )
    if last:
        message += f" (its last log line: {last[:300]})"
    return message
