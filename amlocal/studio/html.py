"""The page frame every view fills in, and the escaping helpers: every value from a record or
a URL reaches a page through `esc` (or `table`), never raw."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote

NAV = (
    ("jobs", "Jobs"),
    ("endpoints", "Endpoints"),
    ("models", "Models"),
    ("schedules", "Schedules"),
    ("monitors", "Monitors"),
)
STATUS_CLASSES = {
    "Completed": "ok",
    "Failed": "failed",
    "Canceled": "canceled",
    "CancelRequested": "canceled",
    "Running": "running",
    "Starting": "running",
    "Preparing": "running",
    "Queued": "waiting",
    "NotStarted": "waiting",
}
TERMINAL = {"Completed", "Failed", "Canceled"}


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def link(kind: str, name: str, text: Any = None) -> str:
    return f'<a href="/{kind}/{quote(name, safe="")}">{esc(name if text is None else text)}</a>'


def status(value: Any) -> str:
    """A status badge: the same colours as the graph's nodes (studio.css)."""
    cls = STATUS_CLASSES.get(str(value), "waiting")
    return f'<span class="badge {cls}">{esc(value)}</span>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table of already-escaped cells (callers escape with `esc` or build with `link`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def parse_time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def duration(record: dict[str, Any]) -> str:
    """A job's run time (to now while it runs), as `12.3s` or `4m 05s`."""
    start = parse_time(record.get("start_time"))
    if start is None:
        return ""
    end = parse_time(record.get("end_time")) or dt.datetime.now(dt.UTC)
    secs = max(0.0, (end - start).total_seconds())
    return f"{secs:.1f}s" if secs < 60 else f"{int(secs // 60)}m {int(secs % 60):02d}s"


def when(value: Any) -> str:
    t = parse_time(value)
    return "" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def page(title: str, body: str, *, active: str = "", scripts: Iterable[str] = ()) -> str:
    nav = "".join(
        f'<a class="{"active" if key == active else ""}" href="/{key}">{label}</a>'
        for key, label in NAV
    )
    tags = "".join(f'<script src="/static/{s}"></script>' for s in scripts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · amlocal studio</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/studio.css"></head>'
        f'<body><header><a class="brand" href="/">amlocal studio</a><nav>{nav}</nav></header>'
        f"<main><h1>{esc(title)}</h1>{body}</main>{tags}</body></html>"
    )


def not_found(what: str) -> str:
    return page(
        "Not found", f'<p class="notfound">{esc(what)} was not found in this workspace.</p>'
    )
