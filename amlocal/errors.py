"""Errors with the exit codes `az ml` users expect."""

from __future__ import annotations


class AmlocalError(Exception):
    """A user-facing error: printed without a traceback, exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InvalidInput(AmlocalError):
    """Bad YAML, flags or references: exit code 2, as `az ml` uses for validation errors."""

    exit_code = 2


class NotFound(AmlocalError):
    """A named job, asset or endpoint does not exist."""

    exit_code = 3


class DiskFull(AmlocalError):
    """No space left where amlocal writes (the workspace, its SQLite stores)."""


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: MLflow and SQLAlchemy wrap sqlite3's errors) says the
    disk is full: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL ('database or disk is full')."""
    import errno

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(e, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
            return True
        text = str(e)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
        e = e.__cause__ or e.__context__ or getattr(e, "orig", None)
    return False
