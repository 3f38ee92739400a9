"""The executor: dispatches mini-batches to the worker pool, retries and times them out,
applies the error thresholds, merges `append_row` output in order and writes the logs."""

from __future__ import annotations

import json
import math
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.jobs.kinds.parallel.minibatch import MiniBatch
from amlocal.jobs.kinds.parallel.pool import Worker, worker_env
from amlocal.jobs.kinds.parallel.results import Progress, Summary
from amlocal.jobs.kinds.parallel.settings import ParallelSpec

WORKER_STOP_GRACE = 5.0
# Mini-batches handed to a worker at once: the one it runs and the next, waiting in its stdin
# pipe, so a worker never idles while the executor merges output (~10% of throughput with
# 2 workers on 2 cores, bench/batch.py). The timeout still counts from each run's start.
WORKER_QUEUE = 2


class _Run:
    """State of one execution; `execute()` is the public entry point."""

    def __init__(
        self,
        spec: ParallelSpec,
        batches: list[MiniBatch],
        output_dir: Path,
        log_dir: Path,
        log: Callable[[str], None],
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
        progress_interval: float,
    ) -> None:
        self.spec, self.batches = spec, batches
        self.output_dir, self.log_dir = Path(output_dir), Path(log_dir)
        self._log, self.on_progress = log, on_progress
        self.cancel = cancel or threading.Event()
        self.progress_interval = progress_interval
        self.t0 = time.monotonic()
        self.env = worker_env(spec, self.output_dir)
        self.pending: deque[tuple[MiniBatch, int]] = deque((b, 1) for b in batches)
        self.final: dict[int, bool] = {}
        self.failures: list[dict[str, Any]] = []
        self.progress = Progress(total=len(batches), items_total=sum(b.n_items for b in batches))
        self.workers: dict[int, Worker] = {}
        self.sel = selectors.DefaultSelector()
        self.next_wid = 0
        self.error: str | None = None
        self.status = "Running"
        self.first_ready: float | None = None
        self.all_ready: float | None = None
        self.first_dispatch: float | None = None
        self.last_done: float | None = None
        self.rss = 0.0
        self.rows_before_all_ready = 0
        self.retries = 0
        self.restarts = 0
        self.run_seconds = self.write_seconds = self.merge_seconds = 0.0
        self.last_progress = 0.0
        self.merge_next = 0
        self.out_file: Path | None = None
        self.parts: Path | None = None  # per-mini-batch results awaiting their turn
        for sub in ("user/stdout", "user/mini_batches"):
            (self.log_dir / sub).mkdir(parents=True, exist_ok=True)
        self.progress_file = (self.log_dir / "job_progress_overview.txt").open("a")
        self.error_file = (self.log_dir / "job_error.txt").open("a")

    # ---- logging
    def log(self, line: str) -> None:
        self._log(line)

    def report_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < self.progress_interval:
            return
        self.last_progress = now
        p = self.progress
        p.elapsed = now - self.t0
        p.workers = sum(1 for w in self.workers.values() if w.ready)
        if self.first_ready is not None and p.rows:
            p.rows_per_second = p.rows / max(now - self.first_ready, 1e-9)
        line = p.line()
        self.progress_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        self.progress_file.flush()
        self.log(line)
        if self.on_progress:
            self.on_progress(p)

    # ---- workers
    def spawn(self) -> None:
        wid = self.next_wid
        self.next_wid += 1
        w = Worker(wid, self.spec, self.env, self.log_dir)
        self.workers[wid] = w
        self.sel.register(w.proc.stdout, selectors.EVENT_READ, wid)  # type: ignore[arg-type]

    def retire(self, w: Worker, kill: bool) -> None:
        try:
            self.sel.unregister(w.proc.stdout)  # type: ignore[arg-type]
        except (KeyError, ValueError):
            pass
        (w.kill if kill else w.close)()
        self.workers.pop(w.wid, None)

    def dispatch(self) -> None:
        # Every idle worker gets a task before any gets a second one to queue.
        for depth in range(1, WORKER_QUEUE + 1):
            for w in list(self.workers.values()):
                if w.ready and len(w.tasks) < depth:
                    if not self.pending or self.error:
                        return
                    self.assign(w, *self.pending.popleft())

    def assign(self, w: Worker, mb: MiniBatch, attempt: int) -> None:
        out = str(self.parts / f"mb-{mb.index:05d}.part") if self.parts else None
        task = {
            "mb": mb.index,
            "attempt": attempt,
            "kind": mb.kind,
            "items": mb.items,
            "n_items": mb.n_items,
            "label": mb.label,
            "out": out,
            "log": str(self.mb_log(mb)),
        }
        if not w.tasks:  # it starts at once; a queued task's clock starts when it does
            w.deadline = time.monotonic() + self.spec.timeout
        w.tasks.append((mb, attempt))
        if self.first_dispatch is None:
            self.first_dispatch = time.monotonic()
        if not w.send(task):  # died between messages: noticed on EOF
            w.deadline = time.monotonic()

    def mb_log(self, mb: MiniBatch) -> Path:
        return self.log_dir / "user" / "mini_batches" / f"mb-{mb.index:05d}.txt"

    # ---- outcomes
    def attempt_failed(self, mb: MiniBatch, attempt: int, error: str) -> None:
        total = 1 + self.spec.max_retries
        where = f"[{mb.label}]"
        self.log(
            f"mini-batch {mb.index} {where} attempt {attempt}/{total} failed: {error} "
            f"(log: {self.mb_log(mb).relative_to(self.log_dir)})"
        )
        if attempt < total:
            self.retries += 1
            self.pending.append((mb, attempt + 1))
            return
        self.final[mb.index] = False
        self.progress.failed += 1
        self.progress.items_failed += mb.n_items
        failure = {"mini_batch": mb.index, "items": mb.label, "attempts": attempt, "error": error}
        self.failures.append(failure)
        self.error_file.write(
            f"mini-batch {mb.index} failed after {attempt} attempt(s): items: {mb.label}: {error}\n"
        )
        self.error_file.flush()
        self.check_thresholds()
        self.merge()
        self.report_progress(force=True)

    def check_thresholds(self) -> None:
        s, p = self.spec, self.progress
        if s.error_threshold >= 0 and p.items_failed > s.error_threshold:
            self.error = (
                f"error_threshold exceeded: {p.items_failed} failed item(s) > "
                f"error_threshold {s.error_threshold}; first failure: {self.failures[0]['items']}:"
                f" {self.failures[0]['error']}"
            )
        elif s.mini_batch_error_threshold >= 0 and p.failed > s.mini_batch_error_threshold:
            self.error = (
                f"mini_batch_error_threshold exceeded: {p.failed} failed mini-batch(es) > "
                f"{s.mini_batch_error_threshold}; first failure: {self.failures[0]['items']}: "
                f"{self.failures[0]['error']}"
            )

    def succeeded(self, mb: MiniBatch, msg: dict[str, Any]) -> None:
        self.final[mb.index] = True
        self.progress.done += 1
        self.progress.items_done += mb.n_items
        self.progress.rows += int(msg.get("rows") or 0)
        self.run_seconds += float(msg.get("run_seconds") or 0)
        self.write_seconds += float(msg.get("write_seconds") or 0)
        self.last_done = time.monotonic()
        self.merge()
        self.report_progress(force=len(self.final) == len(self.batches))

    def merge(self) -> None:
        """Append finished parts to the output file in mini-batch order, as soon as the next
        one in order is final, so the file grows while the job runs and little waits at the
        end."""
        if self.out_file is None or self.parts is None:
            return
        t0 = time.perf_counter()
        with self.out_file.open("ab") as out:
            while self.merge_next in self.final:
                idx = self.merge_next
                part = self.parts / f"mb-{idx:05d}.part"
                if self.final[idx] and part.exists():
                    with part.open("rb") as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                part.unlink(missing_ok=True)
                self.merge_next += 1
        self.merge_seconds += time.perf_counter() - t0

    def handle(self, w: Worker, msg: dict[str, Any]) -> None:
        ev = msg.get("ev")
        if ev == "ready":
            w.ready = True
            now = time.monotonic()
            self.first_ready = self.first_ready or now
            if self.all_ready is None and all(x.ready for x in self.workers.values()):
                self.all_ready = now
                self.rows_before_all_ready = self.progress.rows
                self.log(
                    f"{len(self.workers)} worker(s) ready in {now - self.t0:.2f}s "
                    f"(start-up: interpreter, imports and init())"
                )
        elif ev == "init_failed":
            self.error = f"init() failed on worker {w.wid}: {msg.get('error')}"
            self.log(f"{self.error}\n{msg.get('traceback', '')}".rstrip())
        elif ev == "done" and w.tasks:
            mb, attempt = w.tasks.popleft()
            # The worker has moved on to its queued task, if it has one.
            w.deadline = time.monotonic() + self.spec.timeout if w.tasks else math.inf
            self.rss = max(self.rss, float(msg.get("rss_mb") or 0))
            if msg.get("ok"):
                # Give this worker its next mini-batch before the bookkeeping (merging the
                # output part, progress): the worker idles until it has one.
                self.dispatch()
                self.succeeded(mb, msg)
            else:
                self.attempt_failed(mb, attempt, str(msg.get("error")))

    def worker_lost(self, w: Worker, reason: str) -> None:
        """A worker died or was killed: fail its running attempt, put the task it had not
        started back at the head of the queue, and start a replacement."""
        task = w.tasks.popleft() if w.tasks else None
        self.pending.extendleft(reversed(w.tasks))
        w.tasks.clear()
        self.retire(w, kill=True)
        if not w.ready:
            self.error = self.error or (
                f"worker {w.wid} exited before init() finished "
                f"(exit code {w.proc.returncode}); see {w.log}"
            )
            return
        if task is not None:
            self.attempt_failed(task[0], task[1], reason)
        if not self.error and (self.pending or task is not None):
            self.restarts += 1
            self.spawn()

    # ---- main loop
    def run(self) -> Summary:
        if self.spec.output_action == "append_row":
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.parts = Path(tempfile.mkdtemp(prefix=".parallel-parts-", dir=self.log_dir))
            self.out_file = self.output_dir / self.spec.output_file_name
            self.out_file.write_bytes(b"")
        n = min(self.spec.workers, len(self.batches))
        self.log(
            f"{len(self.batches)} mini-batch(es), {self.progress.items_total} item(s); "
            f"starting {n} worker(s) ({self.spec.instance_count} instance(s) x "
            f"{self.spec.max_concurrency_per_instance} per instance)"
        )
        try:
            try:
                for _ in range(n):
                    self.spawn()
                self.loop()
            finally:
                self.shutdown()
            return self.summary()
        finally:
            self.progress_file.close()
            self.error_file.close()
            if self.parts is not None:
                shutil.rmtree(self.parts, ignore_errors=True)

    def loop(self) -> None:
        while len(self.final) < len(self.batches) and not self.error:
            if self.cancel.is_set():
                self.status = "Canceled"
                self.error = "canceled"
                return
            if not self.workers:  # every worker was lost and none could be replaced
                self.error = self.error or "no workers left"
                return
            self.dispatch()
            now = time.monotonic()
            wait = min([w.deadline for w in self.workers.values()] + [now + 0.25]) - now
            for key, _ in self.sel.select(max(wait, 0.0)):
                w = self.workers.get(key.data)
                if w is None:
                    continue
                msgs, eof = w.read_messages()
                for msg in msgs:
                    self.handle(w, msg)
                if eof:
                    w.proc.wait()
                    self.worker_lost(w, f"worker process exited with code {w.proc.returncode}")
            now = time.monotonic()
            for w in list(self.workers.values()):
                if w.tasks and now >= w.deadline:
                    self.worker_lost(
                        w,
                        f"TimeoutError: run() did not return within retry_settings.timeout="
                        f"{self.spec.timeout:g}s; worker {w.wid} was killed and replaced",
                    )
        if self.error and self.status == "Running":
            self.status = "Failed"

    def shutdown(self) -> None:
        """Stop workers: politely (shutdown() runs) when idle, by SIGKILL otherwise."""
        deadline = time.monotonic() + WORKER_STOP_GRACE
        stopping = []
        for w in list(self.workers.values()):
            if w.ready and not w.tasks and w.send({"stop": True}):
                stopping.append(w)
            else:
                self.retire(w, kill=True)
        for w in stopping:
            try:
                w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            self.retire(w, kill=w.proc.poll() is None)
        self.sel.close()

    def summary(self) -> Summary:
        if self.status == "Running":
            self.status = "Failed" if self.error else "Completed"
        end = time.monotonic()
        p = self.progress
        processing = rate = None
        if self.first_ready is not None and self.last_done is not None:
            processing = max(self.last_done - self.first_ready, 1e-9)
            rate = p.rows / processing
            if self.all_ready is not None and self.last_done > self.all_ready:
                rate = (p.rows - self.rows_before_all_ready) / (self.last_done - self.all_ready)
        s = Summary(
            status=self.status,
            error=None if self.status == "Completed" else self.error,
            mini_batches=p.total,
            mini_batches_succeeded=p.done,
            mini_batches_failed=p.failed,
            items=p.items_total,
            items_succeeded=p.items_done,
            items_failed=p.items_failed,
            rows=p.rows,
            workers=self.next_wid - self.restarts,
            output_file=str(self.out_file) if self.out_file else None,
            failures=self.failures,
            wall_seconds=end - self.t0,
            startup_seconds=None if self.all_ready is None else self.all_ready - self.t0,
            first_mini_batch_seconds=(
                None if self.first_dispatch is None else self.first_dispatch - self.t0
            ),
            processing_seconds=processing,
            rows_per_second=rate,
            worker_peak_rss_mb=self.rss or None,
            retries=self.retries,
            worker_restarts=self.restarts,
            run_seconds=self.run_seconds,
            write_seconds=self.write_seconds,
            merge_seconds=self.merge_seconds,
        )
        (self.log_dir / "job_result.txt").write_text(json.dumps(s.to_dict(), indent=2) + "\n")
        if len(self.final) < len(self.batches):
            self.report_progress(force=True)
        self.log(
            f"parallel run {s.status}: {p.done}/{p.total} mini-batch(es) succeeded, "
            f"{p.failed} failed; {p.items_failed} failed item(s); {p.rows} rows"
            + (f"; {s.error}" if s.error else "")
        )
        return s


def execute(
    spec: ParallelSpec,
    mini_batches: Iterable[MiniBatch],
    output_dir: Path,
    log_dir: Path,
    *,
    log: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 1.0,
) -> Summary:
    """Run every mini-batch through `spec`'s entry script; block until done, failed (a
    threshold exceeded, init() failed) or `cancel` is set. Never raises for user-code errors:
    they are in the Summary and the logs. Raises InvalidInput for an unusable spec."""
    batches = list(mini_batches)
    if not batches:
        raise InvalidInput("nothing to run: the input produced no mini-batches")
    if not (Path(spec.code_dir) / spec.entry_script).is_file():
        raise InvalidInput(f"entry_script {spec.entry_script} not found in {spec.code_dir}")
    if spec.output_action not in ("append_row", "summary_only"):
        raise InvalidInput(
            f"output_action must be append_row or summary_only, got {spec.output_action!r}"
        )
    if spec.timeout <= 0:
        raise InvalidInput(f"retry_settings.timeout must be positive, got {spec.timeout}")
    runner = _Run(
        spec,
        batches,
        output_dir,
        log_dir,
        log or (lambda line: print(line, flush=True)),
        on_progress,
        cancel,
        progress_interval,
    )
    return runner.run()
