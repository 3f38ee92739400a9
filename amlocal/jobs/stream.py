"""`--stream` and `job stream`: a live view of a job fed only by the workspace store, so it
works from any process. On a terminal the DAG table is redrawn in place; elsewhere (CI logs)
each status change is printed once."""

from __future__ import annotations

import io
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from amlocal.jobs import progress
from amlocal.jobs.process import log_tail
from amlocal.jobs.status import TERMINAL
from amlocal.workspace import Workspace

_STAMP = re.compile(r"^\[\d{4}-\d\d-\d\dT[^\]]*\] ")
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


def outcome(child: dict[str, Any], limit: int = 4096) -> str:
    """What a finished step decided, shown beside it: the last line it printed at the left
    margin (e.g. `register: not registered: ...`), with the first of the indented lines that
    detail it (evaluate's `promote=False` and its first reason, not a trailing `(info)`
    line), a `[timestamp]` prefix left out. Only the log's last `limit` bytes are read."""
    path = child.get("_log")
    if not path or child.get("status") not in TERMINAL:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - limit))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.rstrip() for line in tail.splitlines() if line.strip()]
    heads = [i for i, line in enumerate(lines) if not line[:1].isspace()]
    if not heads:
        return lines[-1].strip()[:200] if lines else ""
    head = _STAMP.sub("", lines[heads[-1]])
    details = lines[heads[-1] + 1 : heads[-1] + 2]
    if details:
        head += "; " + details[0].strip().removeprefix("- ")
    return head[:200]


def rows(
    ws: Workspace, job: dict[str, Any], children: list[dict[str, Any]] | None = None
) -> list[dict[str, str]]:
    """One row per step; `children` when the caller already read the step records."""
    out = []
    if children is None:
        children = ws.store.list("job", parent=job["name"])
    for child in children:
        reused = child.get("properties", {}).get("azureml.isreused") == "true"
        out.append(
            {
                "step": child.get("step_name") or child["name"],
                "status": child.get("status", ""),
                "duration": "" if reused else _duration(child),
                "reuse": f"reused {child['properties']['azureml.reusedrunid']}" if reused else "",
                "outcome": "" if reused else outcome(child),
                "why": "; ".join((child.get("rerun") or {}).get("differences") or []),
            }
        )
    return out


def render(ws: Workspace, job: dict[str, Any], children: list[dict[str, Any]] | None = None) -> str:
    lines = [f"{job['name']}  [{job.get('type')}]  {job.get('status')}  {_duration(job)}"]
    ended = job.get("status") in TERMINAL  # its unstarted steps will not start: not "waiting"
    for r in rows(ws, job, children):
        icon = "NotStarted" if ended and r["status"] == "NotStarted" else _ICON.get(r["status"])
        lines.append(
            f"  {r['step']:<24} {icon or r['status']:<9} "
            f"{r['duration']:>8}  {r['reuse'] or r['outcome'] or _rerun(r)}".rstrip()
        )
    return "\n".join(lines)


def _rerun(row: dict[str, str]) -> str:
    return f"rerun: {row['why']}" if row.get("why") else ""


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
            err = child["error"]
            parts.append(f"--- {child.get('step_name')} failed: {err.get('message')}")
            if err.get("log_tail"):  # a pipeline node: its failing leaf step's log
                parts.append(f"--- last lines of {err.get('failed_job')}'s log:\n{err['log_tail']}")
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


class LiveView:
    """One refresh of a job's live view: the DAG table (redrawn on a terminal, a line per
    step change elsewhere) for pipelines, the log tail for single jobs, and the progress of
    sweeps and parallel jobs (`amlocal.jobs.progress`). On a terminal rich draws the table
    and the progress bars in place; it is imported only then.

    `side` is where a single job's progress goes when `out` carries its log (`job stream`:
    the log on stdout, the progress on stderr); it is redrawn in place only if the log does
    not share its terminal."""

    def __init__(
        self, ws: Workspace, name: str, out: TextIO | None = None, side: TextIO | None = None
    ) -> None:
        out = out or sys.stderr  # the stream of the moment, not the one at import
        self.ws, self.name, self.out = ws, name, out
        self.side = side or out
        self.tty = out.isatty()
        self.last = ""
        self.seen: dict[str, str] = {}
        self.tail = LogTail()
        self.term: progress.Terminal | None = None
        self.plain: progress.PlainLines | None = None

    def _progress_view(self, single: bool) -> progress.Terminal | progress.PlainLines:
        """The terminal view (rich) or plain lines, chosen once, on first use."""
        if self.term is None and self.plain is None:
            where = self.side if single else self.out
            shared = where is not self.out and self.out.isatty()
            if where.isatty() and not shared:
                self.term = progress.Terminal(where)
            else:
                self.plain = progress.PlainLines(self.name, where)
        return self.term or self.plain  # type: ignore[return-value]

    def tick(self) -> dict[str, Any] | None:
        """Show what changed since the last tick; returns the job record."""
        job = self.ws.store.get("job", self.name)
        if job is None:
            return None
        single = job.get("type") != "pipeline"
        # A pipeline's step records, read once per tick for the table and the progress.
        children = None if single else self.ws.store.list("job", parent=self.name)
        snaps = progress.of(self.ws, job, children=children)
        if single:
            view = self._progress_view(single) if snaps else None
            if self.term is not None:
                self._pump_through(self.term, job)
            else:
                self.tail.pump(job, self.out)
            if isinstance(view, progress.Terminal):
                view.show("", snaps)
            elif view is not None:
                view.show(snaps)
        elif self.tty:
            term = self._progress_view(single)
            assert isinstance(term, progress.Terminal)
            text = render(self.ws, job, children)
            if text != self.last or snaps:
                term.show(text, snaps)
                self.last = text
        else:
            for r in rows(self.ws, job, children):
                state = f"{r['status']} {r['reuse']}".strip()
                if self.seen.get(r["step"]) != state and r["status"] != "NotStarted":
                    self.seen[r["step"]] = state
                    done = r["status"] in TERMINAL and r["duration"]
                    extra = f" ({r['duration']})" if done else ""
                    said = f": {r['outcome']}" if r["outcome"] else ""
                    if r["status"] == "Running" and r.get("why"):
                        said = f" ({_rerun(r)})"  # why it was not reused
                    self.out.write(f"[{self.name}] {r['step']}: {state}{extra}{said}\n")
            if snaps:
                plain = self._progress_view(single)
                assert isinstance(plain, progress.PlainLines)
                plain.show(snaps)
        self.out.flush()
        return job

    def _pump_through(self, term: progress.Terminal, job: dict[str, Any]) -> None:
        """The log tail printed by rich above its live region, when both share `out`."""
        if term.console.file is not self.out:
            self.tail.pump(job, self.out)
            return
        buf = io.StringIO()
        self.tail.pump(job, buf)
        if buf.getvalue():
            term.log(buf.getvalue())

    def close(self) -> None:
        """Stop redrawing (the last frame stays on the terminal)."""
        if self.term is not None:
            self.term.close()


def follow(
    ws: Workspace,
    name: str,
    out: TextIO | None = None,
    interval: float = 0.2,
    summary: TextIO | None = None,
) -> dict[str, Any]:
    """Show the job until it reaches a terminal state; returns the final record. The final
    status and any failure report go to `summary` (default: `out`), so that `out` can carry
    the log and nothing else."""
    view = LiveView(ws, name, out, side=summary)
    end = summary or view.out
    try:
        while True:
            job = view.tick()
            if job is None:
                raise SystemExit(f"job {name} vanished")
            if job.get("status") in TERMINAL:
                break
            time.sleep(interval)
    finally:
        view.close()
    end.write(f"[{name}] {job['status']}\n")
    if job["status"] != "Completed":
        report = failure_report(ws, job)
        if report:
            end.write(report + "\n")
    end.flush()
    return job
