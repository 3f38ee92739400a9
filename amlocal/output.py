"""Printing results the way `az` does: `-o json` (default), `table`, `tsv`, `yaml`, `none`,
filtered by `--query` (a JMESPath subset: dotted keys, `[n]`, `[]` projections)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

_TOKEN = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]|\[\]")


def query(value: Any, expr: str | None) -> Any:
    """Apply a dotted/indexed query such as `primaryKey`, `jobs.train.status`, `[0].name`."""
    if not expr:
        return value
    parts = _TOKEN.findall(expr)
    return _walk(value, parts)


def _walk(value: Any, parts: list[tuple[str, str]]) -> Any:
    for i, (key, index) in enumerate(parts):
        if value is None:
            return None
        if key:
            value = value.get(key) if isinstance(value, dict) else None
        elif index:
            value = value[int(index)] if isinstance(value, list) and value else None
        else:  # [] projection
            rest = parts[i + 1 :]
            return [_walk(v, rest) for v in (value or [])]
    return value


def render(value: Any, fmt: str = "json") -> str:
    if fmt == "none" or value is None:
        return ""
    if fmt == "tsv":
        return _tsv(value)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(value, sort_keys=False)
    if fmt == "table":
        return table(value)
    return json.dumps(value, indent=2, default=str)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return "" if v is None else str(v)


def _tsv(value: Any) -> str:
    rows = value if isinstance(value, list) else [value]
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append(
                "\t".join(_scalar(v) for v in row.values() if not isinstance(v, (dict, list)))
            )
        else:
            out.append(_scalar(row))
    return "\n".join(out)


def table(value: Any, columns: list[str] | None = None) -> str:
    """A plain text table of the scalar fields (az's table output)."""
    rows = value if isinstance(value, list) else [value]
    rows = [r for r in rows if isinstance(r, dict)]
    if not rows:
        return _scalar(value)
    cols = columns or [k for k, v in rows[0].items() if not isinstance(v, (dict, list))]
    cells = [[_scalar(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=False)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, cells)])


def emit(value: Any, fmt: str, expr: str | None) -> None:
    text = render(query(value, expr), fmt)
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
