"""When a schedule fires: Azure ML's cron and recurrence triggers, in the trigger's time zone.

Cron expressions are evaluated by croniter and recurrences by dateutil's rrule (RFC 5545, the
model Azure's recurrence follows), both on time-zone aware datetimes, so a `0 2 * * *` in
"Pacific Standard Time" fires at 02:00 Pacific across daylight-saving changes. Azure names
time zones the Windows way (azure.ai.ml.constants.TimeZone); tzlocal's CLDR table maps them
to IANA names for zoneinfo. Source: reference-yaml-schedule
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amlocal import yamlsafe
from amlocal.errors import InvalidInput

UTC = dt.UTC
_FREQ = {
    "minute": "MINUTELY",
    "hour": "HOURLY",
    "day": "DAILY",
    "week": "WEEKLY",
    "month": "MONTHLY",
}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def zone(name: str | None) -> ZoneInfo:
    """A zoneinfo zone for Azure's Windows time-zone name (or an IANA name); UTC by default."""
    if not name or name.upper() in ("UTC", "COORDINATED UNIVERSAL TIME"):
        return ZoneInfo("UTC")
    from tzlocal.windows_tz import win_tz

    iana = win_tz.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"trigger.time_zone: unknown time zone {name!r}") from None


def parse_time(value: Any, tz: ZoneInfo) -> dt.datetime | None:
    """start_time/end_time: ISO 8601; without an offset the time is in the trigger's zone."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"trigger: {value!r} is not an ISO 8601 date-time") from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def load_schedule(source: Any, params_override: list[dict[str, Any]]) -> Any:
    """azure-ai-ml's load_schedule; a monitor schedule's schema errors are reported as such
    (azure-ai-ml's error path raises a bare NotImplementedError for MonitorSchedule)."""
    from azure.ai.ml.entities._load_functions import load_schedule

    try:
        return load_schedule(source=source, params_override=params_override)
    except NotImplementedError:
        from azure.ai.ml._schema.monitoring.schedule import MonitorScheduleSchema
        from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

        data = yamlsafe.load_file(source) or {}
        ctx = {BASE_PATH_CONTEXT_KEY: Path(source).parent}
        MonitorScheduleSchema(context=ctx).load(data)  # raises the marshmallow error
        raise


class Trigger:
    """Fire times of one trigger (the `trigger:` mapping of a schedule, as azure-ai-ml dumps it)."""

    def __init__(self, spec: dict[str, Any], created: dt.datetime) -> None:
        self.spec = spec
        self.type = str(spec.get("type", "")).lower()
        self.tz = zone(spec.get("time_zone"))
        self.start = parse_time(spec.get("start_time"), self.tz) or created
        self.end = parse_time(spec.get("end_time"), self.tz)
        if self.type == "cron":
            from croniter import croniter

            expr = str(spec.get("expression", ""))
            if not croniter.is_valid(expr):
                raise InvalidInput(f"trigger.expression: {expr!r} is not a valid cron expression")
            self.expression = expr
        elif self.type == "recurrence":
            self._rule = self._rrule()
        else:
            raise InvalidInput(f"trigger.type: expected cron or recurrence, got {self.type!r}")

    def _rrule(self) -> Any:
        from dateutil import rrule

        freq = str(self.spec.get("frequency", "")).lower()
        if freq not in _FREQ:
            raise InvalidInput(f"trigger.frequency: expected one of {list(_FREQ)}, got {freq!r}")
        interval = int(self.spec.get("interval") or 1)
        if interval < 1:
            raise InvalidInput("trigger.interval: must be a positive integer")
        pattern = self.spec.get("schedule") or {}
        kwargs: dict[str, Any] = {}

        def ints(key: str) -> list[int] | None:
            v = pattern.get(key)
            if v is None:
                return None
            return [int(x) for x in (v if isinstance(v, list) else [v])]

        if (hours := ints("hours")) is not None:
            kwargs["byhour"] = hours
        if (minutes := ints("minutes")) is not None:
            kwargs["byminute"] = minutes
        if (month_days := ints("month_days")) is not None:
            kwargs["bymonthday"] = month_days
        days = pattern.get("week_days")
        if days is not None:
            days = days if isinstance(days, list) else [days]
            try:
                kwargs["byweekday"] = [_DAYS.index(str(d).lower()) for d in days]
            except ValueError:
                raise InvalidInput(
                    f"trigger.schedule.week_days: expected days of {_DAYS}"
                ) from None
        if kwargs:  # a pattern fixes the clock time: seconds are 0
            kwargs["bysecond"] = 0
            kwargs.setdefault("byminute", 0 if "byhour" in kwargs else None)
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
        start = self.start.astimezone(self.tz).replace(microsecond=0)
        return rrule.rrule(
            getattr(rrule, _FREQ[freq]), interval=interval, dtstart=start, cache=False, **kwargs
        )

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        """The first fire time strictly after `t` (None after end_time)."""
        t = max(t, self.start - dt.timedelta(microseconds=1))
        if self.type == "cron":
            from croniter import croniter

            nxt = croniter(self.expression, t.astimezone(self.tz)).get_next(dt.datetime)
        else:
            nxt = self._rule.after(t.astimezone(self.tz), inc=False)
        if nxt is None or (self.end is not None and nxt > self.end):
            return None
        return nxt.astimezone(UTC)

    def latest_due(self, after: dt.datetime, now: dt.datetime) -> dt.datetime | None:
        """The latest fire time in (after, now], or None: missed firings collapse into one."""
        if self.end is not None:
            now = min(now, self.end)
        if now <= after or now < self.start:
            return None
        if self.type == "cron":
            from croniter import croniter

            # get_prev is strictly before its base: a base 1 s later includes `now` itself.
            base = (now + dt.timedelta(seconds=1)).astimezone(self.tz)
            due = croniter(self.expression, base).get_prev(dt.datetime).astimezone(UTC)
        else:
            due = self._rule.before(now.astimezone(self.tz), inc=True)
            due = due.astimezone(UTC) if due is not None else None
        if due is None or due <= after or due < self.start or due > now:
            return None
        return due
