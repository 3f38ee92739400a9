"""`az ml component|data|environment update|archive|restore`, as az ml gives them.

Archiving hides a version (or, without --version, every version of the asset) from `list`
and from `@latest`; an archived version still resolves by its explicit version, and `restore`
brings it back (how-to-manage-models / how-to-create-data-assets "Archive and restore").
`update` changes only the fields Azure lets change on an immutable asset version: its
description, display name (components), tags and, for components, stage.
"""

from __future__ import annotations

import argparse
from typing import Any

from amlocal import assets
from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace, public

ARCHIVED = "_archived"

# The fields `az ml <group> update --set` may change; everything else is immutable.
_UPDATABLE = {
    "component": ("description", "display_name", "tags", "stage"),
    "data": ("description", "tags"),
    "environment": ("description", "tags"),
}


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    if group not in _UPDATABLE:
        return
    for verb, func, text in (
        ("archive", archive, f"Archive a {group} (a version, or all of its versions)."),
        ("restore", restore, f"Restore an archived {group}."),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("-n", "--name", required=True)
        g = p.add_mutually_exclusive_group()
        g.add_argument("-v", "--version")
        g.add_argument("-l", "--label")
        p.set_defaults(func=func, group=group)
    p = verbs.add_parser("update", help=f"Update a {group}'s mutable fields.")
    p.add_argument("-n", "--name")
    p.add_argument("-v", "--version")
    p.add_argument("-f", "--file")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=update, group=group)


def _versions(
    ws: Workspace, group: str, name: str, version: str | None, label: str | None
) -> list[str]:
    known = ws.store.versions(group, name)
    if not known:
        raise NotFound(f"{group} '{name}' is not registered in this workspace")
    if version is None and label is None:
        return known
    return [
        assets.get(ws, group, f"azureml:{name}" + (f":{version}" if version else f"@{label}"))[
            "version"
        ]
    ]


def _set_archived(args: argparse.Namespace, archived: bool) -> Any:
    ws = Workspace()
    for v in _versions(ws, args.group, args.name, args.version, args.label):
        ws.store.update(args.group, args.name, lambda r: {**r, ARCHIVED: archived}, version=v)
    return None


def archive(args: argparse.Namespace) -> Any:
    return _set_archived(args, True)


def restore(args: argparse.Namespace) -> Any:
    return _set_archived(args, False)


def update(args: argparse.Namespace) -> Any:
    """`update -n x -v 1 --set description=...` or `update -f x.yml` (the file's mutable
    fields applied to the version it names)."""
    from amlocal import loader

    group = args.group
    changes: dict[str, Any] = {}
    if args.file:
        import yaml

        try:
            doc = yaml.safe_load(open(args.file, encoding="utf-8").read(1 << 20)) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"{args.file}: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidInput(f"{args.file}: expected a mapping")
        name = args.name or doc.get("name")
        version = args.version or (str(doc["version"]) if "version" in doc else None)
        changes = {k: doc[k] for k in _UPDATABLE[group] if k in doc}
    else:
        name, version = args.name, args.version
    if not name:
        raise InvalidInput(f"{group} update needs --name (or --file with a name)")
    for override in loader.parse_set(args.set):
        for key, value in override.items():
            top, _, sub = key.partition(".")
            if top not in _UPDATABLE[group] or (sub and top != "tags"):
                allowed = ", ".join(_UPDATABLE[group])
                raise InvalidInput(
                    f"--set {key}: a {group} version is immutable; only {allowed} can change"
                )
            if sub:
                changes.setdefault("tags", {})[sub] = value
            else:
                changes[top] = value
    ref = f"azureml:{name}" + (f":{version}" if version else "@latest")
    record = assets.get(ws := Workspace(), group, ref)

    def apply(r: dict[str, Any]) -> dict[str, Any]:
        out = {**r}
        for key, value in changes.items():
            if key == "tags":
                out["tags"] = {**(r.get("tags") or {}), **{str(k): v for k, v in value.items()}}
            else:
                out[key] = value
        return out

    updated = ws.store.update(group, name, apply, version=record["version"])
    assert updated is not None
    return public(updated)
