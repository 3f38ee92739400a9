"""Printing results the way `az` does (knack's output and query modules): `-o json` (default),
`table`, `tsv`, `yaml`, `none`, filtered by `--query`, a JMESPath expression evaluated by the
`jmespath` library as az evaluates it.

az's rules kept here: objects a query builds (`{n:name}`) keep the query's key order, other
objects print their keys sorted (tsv) or as they come (table with a query); tsv writes a
nested object as an empty cell and a list as its length; table leaves out `id`, `type`,
`etag` and any nested or null value, and capitalizes the first letter of each heading; a
null result prints nothing. Added locally: a table wider than 120 columns drops its widest
columns (never `Name`) until it fits.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from typing import Any

TABLE_WIDTH = 120
# knack's _TableOutput.SKIP_KEYS: az's tables never show these (the ARM id among them).
SKIP_KEYS = ("id", "type", "etag")


class QueryError(ValueError):
    """A --query that does not parse or does not apply to the result (exit 2)."""


def compile_query(raw: str) -> Any:
    """The `--query` argument type: compiled when the command line is parsed, as az does, so
    a malformed expression is a usage error (exit 2) before anything runs."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.compile(raw)
    except (JMESPathError, KeyError) as exc:
        raise argparse.ArgumentTypeError(f"invalid JMESPath query {raw!r}: {exc}") from None


def query(value: Any, expr: Any) -> Any:
    """Apply a query (a compiled expression or its text); None/empty leaves the value as is.

    Objects the query builds are OrderedDicts, as in az, which is how tsv tells them (query
    order) from the command's own objects (sorted keys).
    """
    if not expr:
        return value
    if isinstance(expr, str):
        try:
            expr = compile_query(expr)
        except argparse.ArgumentTypeError as exc:
            raise QueryError(str(exc)) from None
    from jmespath import Options
    from jmespath.exceptions import JMESPathError

    try:
        return expr.search(value, Options(dict_cls=OrderedDict))
    except JMESPathError as exc:
        raise QueryError(f"--query {expr.expression!r}: {exc}") from None


def render(value: Any, fmt: str = "json", query_active: bool = False) -> str:
    if fmt == "none" or value is None:
        return ""
    if fmt == "tsv":
        return tsv(value)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(json.loads(json.dumps(value, default=str)), sort_keys=False)
    if fmt == "table":
        return table(value, sort_keys=not query_active)
    return json.dumps(value, indent=2, default=str)


def _tsv_cell(v: Any) -> str:
    if isinstance(v, list):
        return str(len(v))
    if isinstance(v, dict):
        return ""  # keeps the columns aligned when a value is an object in some rows only
    return v if isinstance(v, str) else str(v)


def _tsv_row(row: Any) -> str:
    if isinstance(row, OrderedDict):
        values: Any = row.values()
    elif isinstance(row, dict):
        values = [v for _, v in sorted(row.items())]
    elif isinstance(row, list):
        values = row
    elif isinstance(row, bool):
        return str(row).lower()
    else:
        return _tsv_cell(row)
    return "\t".join(_tsv_cell(v) for v in values)


def tsv(value: Any) -> str:
    """One line per list item (or one for a single value), cells separated by tabs."""
    rows = value if isinstance(value, list) else [value]
    return "\n".join(_tsv_row(row) for row in rows)


def _table_row(item: Any, sort_keys: bool) -> dict[str, Any]:
    if isinstance(item, dict):
        keys = sorted(item) if sort_keys else list(item)
        return {
            k[:1].upper() + k[1:]: item[k]
            for k in keys
            if k not in SKIP_KEYS and item[k] is not None and not isinstance(item[k], (list, dict))
        }
    if isinstance(item, list):
        return {f"Column{i + 1}": v for i, v in enumerate(item)}
    return {"Result": item}


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def table(value: Any, sort_keys: bool = True, width: int = TABLE_WIDTH) -> str:
    """az's table: a heading row, a dashed rule, then one row per item."""
    rows = [_table_row(r, sort_keys) for r in (value if isinstance(value, list) else [value])]
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    if not cols:
        return ""
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    keep = list(range(len(cols)))
    name = cols.index("Name") if "Name" in cols else 0  # what a row is: never dropped
    while len(keep) > 1 and sum(widths[i] for i in keep) + 2 * (len(keep) - 1) > width:
        keep.remove(max((i for i in keep if i != name), key=lambda i: widths[i]))

    def line(values: list[str]) -> str:
        return "  ".join(values[i].ljust(widths[i]) for i in keep).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, cells)])


def emit(value: Any, fmt: str, expr: Any) -> None:
    text = render(query(value, expr), fmt, query_active=bool(expr))
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
