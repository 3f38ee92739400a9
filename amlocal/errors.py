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
