"""The expressions a schedule's `create_job` overrides may hold, resolved when it fires.

how-to-schedule-pipeline-job ("Expressions supported in schedule"):
`${{creation_context.trigger_time}}` is the firing's time, in string inputs of the job;
`${{name}}` is the job's own name, in its outputs' paths (resolved by the job engine with
the other output path expressions, since the name is only known once the job exists).
The time is written as ISO 8601 UTC with a `Z` (`2026-12-07T02:00:00Z`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

TRIGGER_TIME = re.compile(r"\$\{\{\s*creation_context\.trigger_time\s*\}\}")


def trigger_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve(overrides: list[dict[str, Any]], when: dt.datetime) -> list[dict[str, Any]]:
    """The overrides with `${{creation_context.trigger_time}}` replaced by `when`."""
    stamp = trigger_time(when)

    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return TRIGGER_TIME.sub(stamp, value)
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        return value

    return [{k: sub(v) for k, v in o.items()} for o in overrides]
