"""`az ml job update -n <job> --set display_name=... tags.k=v`: a submitted job's mutable
fields (az ml: display_name, description, tags, properties; anything else is exit 2).
Properties are add-only on Azure: an existing property keeps its value."""

from __future__ import annotations

import argparse
from typing import Any

from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace, public_job

_FIELDS = ("display_name", "description")
_MAPS = ("tags", "properties")


def add_verb(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("update", help="Update a job's display name, description, tags.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=update)


def update(args: argparse.Namespace) -> Any:
    from amlocal.loader import parse_set

    fields: dict[str, Any] = {}
    maps: dict[str, dict[str, str]] = {m: {} for m in _MAPS}
    for override in parse_set(args.set):
        for key, value in override.items():
            top, _, sub = key.partition(".")
            if key in _FIELDS:
                fields[key] = "" if value is None else str(value)
            elif top in _MAPS and sub:
                maps[top][sub] = "" if value is None else str(value)
            else:
                raise InvalidInput(
                    f"--set {key}: a job can change only display_name, description, "
                    f"tags.<key> and properties.<key>"
                )
    ws = Workspace()

    def apply(r: dict[str, Any]) -> dict[str, Any]:
        out = {**r, **fields}
        if maps["tags"]:
            out["tags"] = {**(r.get("tags") or {}), **maps["tags"]}
        if maps["properties"]:  # add-only, as Azure keeps a job's properties
            out["properties"] = {**maps["properties"], **(r.get("properties") or {})}
        return out

    updated = ws.store.update("job", args.name, apply)
    if updated is None:
        raise NotFound(f"job '{args.name}' was not found in workspace {ws.home}")
    return public_job(updated)
