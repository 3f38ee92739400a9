"""What an execution reports: progress snapshots and the final summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Progress:
    """A snapshot for progress lines and job records."""

    total: int
    done: int = 0
    failed: int = 0
    items_total: int = 0
    items_done: int = 0
    items_failed: int = 0
    rows: int = 0
    elapsed: float = 0.0
    rows_per_second: float = 0.0
    workers: int = 0

    def line(self) -> str:
        pct = 100.0 * (self.done + self.failed) / self.total if self.total else 100.0
        return (
            f"progress: mini-batches {self.done + self.failed}/{self.total} ({pct:.0f}%): "
            f"{self.done} succeeded, {self.failed} failed; items {self.items_done}/"
            f"{self.items_total} ({self.items_failed} failed); {self.rows} rows, "
            f"{self.rows_per_second:,.0f} rows/s; {self.workers} worker(s); "
            f"{self.elapsed:.1f}s"
        )


@dataclass
class Summary:
    """What a finished execution reports (also written to logs/job_result.txt)."""

    status: str  # Completed | Failed | Canceled
    error: str | None
    mini_batches: int
    mini_batches_succeeded: int
    mini_batches_failed: int
    items: int
    items_succeeded: int
    items_failed: int
    rows: int
    workers: int
    output_file: str | None
    failures: list[dict[str, Any]]
    wall_seconds: float
    startup_seconds: float | None  # execute() start -> all initial workers ready
    first_mini_batch_seconds: float | None  # execute() start -> first mini-batch dispatched
    processing_seconds: float | None  # first worker ready -> last mini-batch finished
    # Throughput once workers are up: rows finished after the last initial worker became
    # ready, per second until the end (start-up excluded); falls back to rows /
    # processing_seconds when everything finished before all workers were up.
    rows_per_second: float | None
    worker_peak_rss_mb: float | None
    retries: int = 0
    worker_restarts: int = 0
    # Where the time went (succeeded mini-batches): inside run(), reading included; turning
    # results into append_row lines and writing them; the executor merging them in order.
    run_seconds: float = 0.0
    write_seconds: float = 0.0
    merge_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
