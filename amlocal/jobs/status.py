"""Job statuses as Azure ML spells them, and the record timestamps.

A `StrEnum`, so a status is still the plain string the store's JSON records hold: a record
written before this module existed compares equal, and `json.dumps` writes the bare value.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum


class Status(StrEnum):
    NOT_STARTED = "NotStarted"
    STARTING = "Starting"
    RUNNING = "Running"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    FINALIZING = "Finalizing"  # a pipeline running its settings.on_finalize job
    SKIPPED = "Skipped"  # a control-flow branch not taken, and the steps that depend on it


TERMINAL: frozenset[str] = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.SKIPPED}
)


def succeeded(status: str) -> bool:
    """A step that did what its pipeline asked: it completed, or control flow skipped it."""
    return status in (Status.COMPLETED, Status.SKIPPED)


def now_iso() -> str:
    """UTC, milliseconds, ISO 8601: the form of every `*_time` field in a job record."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
