"""`--stream` and `job stream`: a live view of a job fed only by the workspace store, so it
works from any process. On a terminal the DAG table is redrawn in place; elsewhere (CI logs)
each status change is printed once."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from amlocal.jobs.run import log_tail
from amlocal.workspace import Workspace

TERMINAL = {"Completed", "Failed", "Canceled"}
_ICON = {
    "Completed": "ok",
    "Failed": "FAILED",
    "Canceled": "canceled",
    "Running": "running",
    "NotStarted": "waiting",
    "CancelRequested": "canceling",
}


def _duration(r: dict[str, Any]) -> str:
    start, end = r.get("start_time"), r.get("end_time")
    if not start:
        return ""
    t0 = datetime.fromisoformat(start).timestamp()
    t1 = datetime.fromisoformat(end).timestamp() if end else time.time()
    return f"{max(0.0, t1 - t0):.1f}s"


def rows(ws: Workspace, job: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for child in ws.store.list("job", parent=job["name"]):
        reused = child.get("properties", {}).get("azureml.isreused") == "true"
        out.append(
            {
                "step": child.get("step_name") or child["name"],
                "status": child.get("status", ""),
                "duration": "" if reused else _duration(child),
                "reuse": f"reused {child['properties']['azureml.reusedrunid']}" if reused else "",
            }
        )
    return out


def render(ws: Workspace, job: dict[str, Any]) -> str:
    lines = [f"{job['name']}  [{job.get('type')}]  {job.get('status')}  {_duration(job)}"]
    for r in rows(ws, job):
        lines.append(
            f"  {r['step']:<24} {_ICON.get(r['status'], r['status']):<9} "
            f"{r['duration']:>8}  {r['reuse']}"
        )
    return "\n".join(lines)


def failure_report(ws: Workspace, job: dict[str, Any]) -> str:
    parts = []
    for child in [job, *ws.store.list("job", parent=job["name"])]:
        if child.get("status") in ("Failed",) and child.get("_log"):
            tail = log_tail(Path(child["_log"]), 20)
            msg = (child.get("error") or {}).get("message", "")
            parts.append(
                f"--- {child.get('step_name') or child['name']} failed: {msg}\n"
                f"--- last lines of {child['_log']}:\n{tail}"
            )
        elif child.get("status") == "Failed" and child is not job and child.get("error"):
            parts.append(f"--- {child.get('step_name')} failed: {child['error'].get('message')}")
    if not parts and job.get("error"):
        parts.append(f"--- {job['error'].get('message')}")
    return "\n".join(parts)


class LogTail:
    """Copies new bytes of a job's std_log.txt to a stream, as `az ml job stream` does."""

    def __init__(self) -> None:
        self.pos = 0

    def pump(self, job: dict[str, Any], out: TextIO) -> None:
        path = job.get("_log")
        if not path:
            return
        try:
            with open(path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.pos += len(chunk)
        if chunk:
            out.write(chunk.decode(errors="replace"))
            out.flush()


def follow(
    ws: Workspace, name: str, out: TextIO = sys.stderr, interval: float = 0.2
) -> dict[str, Any]:
    """Show the job until it reaches a terminal state; returns the final record."""
    tty = out.isatty()
    last = ""
    seen: dict[str, str] = {}
    tail = LogTail()
    while True:
        job = ws.store.get("job", name)
        if job is None:
            raise SystemExit(f"job {name} vanished")
        if job.get("type") == "pipeline":
            if tty:
                text = render(ws, job)
                if text != last:
                    if last:
                        out.write(f"\x1b[{last.count(chr(10)) + 1}F\x1b[J")
                    out.write(text + "\n")
                    last = text
            else:
                for r in rows(ws, job):
                    key = r["step"]
                    state = f"{r['status']} {r['reuse']}".strip()
                    if seen.get(key) != state and r["status"] != "NotStarted":
                        seen[key] = state
                        extra = (
                            f" ({r['duration']})"
                            if r["status"] in TERMINAL and r["duration"]
                            else ""
                        )
                        out.write(f"[{name}] {key}: {state}{extra}\n")
        else:  # a single job: follow its log
            tail.pump(job, out)
        out.flush()
        if job.get("status") in TERMINAL:
            out.write(f"[{name}] {job['status']}\n")
            if job["status"] != "Completed":
                report = failure_report(ws, job)
                if report:
                    out.write(report + "\n")
            out.flush()
            return job
        time.sleep(interval)
