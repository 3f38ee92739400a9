"""Progress of long work under `--stream` and `job stream`: a sweep's trials and a parallel
job's (or batch invocation's) mini-batches, read from the workspace store like the rest of
the live view, so it works from any process.

* sweep: `trials 3/8 done, 2 running, best acc=0.91 (<trial>)` from the trial records (the
  children of the sweep job) and the total the sweep recorded (`_trials_total`);
* parallel: `mini-batches 12/40, 3,400 rows/s` from the executor's last progress report,
  which the step keeps in its record (`_progress`).

On a terminal `Terminal` draws them with rich (Live + Progress bars), refreshed in place.
rich is imported only then: it costs about 50 ms of import, which a `--stream` whose output
goes to a pipe or a CI log does not pay. Elsewhere `PlainLines` prints one plain line per
change, throttled (see `PlainLines`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from amlocal.jobs.status import TERMINAL, Status

if TYPE_CHECKING:
    from amlocal.workspace import Workspace

KINDS = ("sweep", "parallel")
BUCKETS = 10  # plain lines: one each time another tenth of the work is done
QUIET_SECONDS = 10.0  # ... and between those, at most one line every QUIET_SECONDS


@dataclass(frozen=True)
class Snapshot:
    """Where one sweep or parallel job stands. `label` names it in the view: the step's name
    inside a pipeline, "" for the job being streamed itself."""

    label: str
    done: int
    total: int | None
    text: str
    best: str = ""  # a sweep's best so far: a change is always worth a line

    @property
    def bucket(self) -> int:
        return self.done * BUCKETS // self.total if self.total else 0


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def sweep(ws: Workspace, record: dict[str, Any], label: str = "") -> Snapshot:
    """`trials 3/8 done, 2 running, best acc=0.91 (<trial>)` of a started sweep. The best is the best value of
    the primary metric among completed trials, by the objective's goal."""
    objective = record.get("objective") or {}
    metric = str(objective.get("primary_metric") or "")
    maximize = str(objective.get("goal") or "maximize").lower() != "minimize"
    done = running = 0
    best: tuple[float, str] | None = None
    for trial in ws.store.list("job", parent=record["name"]):
        status = trial.get("status")
        if status in TERMINAL:
            done += 1
        elif status in (Status.RUNNING, Status.STARTING):
            running += 1
        value = (trial.get("metrics") or {}).get(metric)
        if status == Status.COMPLETED and isinstance(value, int | float):
            v = float(value)
            if best is None or (v > best[0] if maximize else v < best[0]):
                best = (v, trial["name"])
    total = int(record["_trials_total"])
    text = f"trials {done}/{total} done, {running} running"
    shown = f"best {metric}={_fmt(best[0])} ({best[1]})" if best else ""
    if shown:
        text += ", " + shown
    return Snapshot(label, done, total, text, shown)


def parallel(record: dict[str, Any], label: str = "") -> Snapshot | None:
    """`mini-batches 12/40, 3,400 rows/s` (failed ones counted as done, and named); None
    before the executor's first report."""
    p = record.get("_progress")
    if not isinstance(p, dict):
        return None
    done, failed, total = int(p.get("done", 0)), int(p.get("failed", 0)), int(p.get("total", 0))
    text = f"mini-batches {done + failed}/{total}"
    if failed:
        text += f" ({failed} failed)"
    text += f", {float(p.get('rows_per_second') or 0):,.0f} rows/s"
    return Snapshot(label, done + failed, total, text)


def of(
    ws: Workspace,
    job: dict[str, Any],
    label: str = "",
    children: list[dict[str, Any]] | None = None,
) -> list[Snapshot]:
    """The progress of `job` if it is a sweep or parallel job, else of its sweep and parallel
    steps that have started (those of nested pipelines too), in the pipeline's order;
    `children`: the pipeline's step records, when the caller already read them."""
    kind = job.get("type")
    if kind == "sweep":  # once it knows its total: it has started its trials
        return [sweep(ws, job, label)] if isinstance(job.get("_trials_total"), int) else []
    if kind == "parallel":
        snap = parallel(job, label)
        return [snap] if snap else []
    if kind != "pipeline":
        return []
    out: list[Snapshot] = []
    if children is None:
        children = ws.store.list("job", parent=job["name"])
    for child in children:
        if child.get("type") in (*KINDS, "pipeline") and child.get("status") != "NotStarted":
            if (child.get("properties") or {}).get("azureml.isreused") == "true":
                continue
            step = child.get("step_name") or child["name"]
            out += of(ws, child, f"{label}/{step}" if label else step)
    return out


class PlainLines:
    """One plain line per change where no terminal is attached (CI logs, pipes), throttled
    so that a 10,000-mini-batch job prints about a dozen lines, not 10,000: a line is
    printed for the first snapshot, each time another tenth of the total is done (the last
    one included), each time a sweep's best changes, and otherwise, if anything changed, at
    most once every QUIET_SECONDS (a slow job still shows it is alive)."""

    def __init__(self, name: str, out: TextIO) -> None:
        self.name, self.out = name, out
        self.last: dict[str, tuple[Snapshot, float]] = {}

    def show(self, snaps: list[Snapshot]) -> None:
        now = time.monotonic()
        for s in snaps:
            prev = self.last.get(s.label)
            if prev is not None:
                before, at = prev
                if before.text == s.text:
                    continue
                moved = s.bucket != before.bucket or (s.total and s.done == s.total)
                if not (moved or s.best != before.best or now - at >= QUIET_SECONDS):
                    continue
            self.last[s.label] = (s, now)
            where = f"{s.label}: " if s.label else ""
            self.out.write(f"[{self.name}] {where}{s.text}\n")
        self.out.flush()


class Terminal:
    """The live view on a terminal with rich: an optional text block (a pipeline's step
    table) above one progress bar per sweep or parallel job, redrawn in place. Log text
    goes through `log`, so that it scrolls above the live region instead of tearing it."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(file=out, highlight=False)
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            auto_refresh=False,
        )
        self.tasks: dict[str, Any] = {}
        self.shown: tuple[str, list[str]] | None = None
        self.partial = ""
        self.live = Live(
            console=self.console, auto_refresh=False, redirect_stdout=False, transient=False
        )
        self.live.start()

    def show(self, head: str, snaps: list[Snapshot]) -> None:
        from rich.console import Group
        from rich.text import Text

        key = (head, [s.text for s in snaps])
        if key == self.shown:
            return
        self.shown = key
        for s in snaps:
            info = s.text.split(", ", 1)[1] if ", " in s.text else ""
            if s.label not in self.tasks:
                what = "trials" if s.text.startswith("trials") else "mini-batches"
                desc = f"{s.label}: {what}" if s.label else what
                self.tasks[s.label] = self.bars.add_task(desc, total=s.total, info=info)
            self.bars.update(self.tasks[s.label], completed=s.done, total=s.total, info=info)
        # One line per step, cut at the terminal's width: a long outcome wrapped to column 0
        # would break the table (and each redraw would move it).
        parts: list[Any] = [Text(head, no_wrap=True, overflow="ellipsis")] if head else []
        if self.tasks:
            parts.append(self.bars)
        self.live.update(Group(*parts), refresh=True)

    def log(self, text: str) -> None:
        """Whole lines above the live region; a partial line waits for its end."""
        text = self.partial + text
        head, sep, self.partial = text.rpartition("\n")
        if sep:
            self.console.print(head, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.partial:
            self.console.print(self.partial, markup=False, highlight=False, soft_wrap=True)
            self.partial = ""
        self.live.stop()
