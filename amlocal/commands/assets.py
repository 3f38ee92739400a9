"""`amlocal data|environment|component|model create|list|show`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amlocal import assets
from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace

_CREATE = {
    "data": assets.create_data,
    "environment": assets.create_environment,
    "component": assets.create_component,
    "model": assets.create_model,
}


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    p = verbs.add_parser("create", help=f"Create a {group} asset from a YAML file.")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-n", "--name")
    p.add_argument("-v", "--version")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    if group == "data":
        p.add_argument("-p", "--path")
        p.add_argument("-t", "--type")
    if group == "environment":
        p.add_argument("--conda-file")
        p.add_argument("-i", "--image")
    p.set_defaults(func=create, group=group)

    p = verbs.add_parser("list", help=f"List {group} assets.")
    p.add_argument("-n", "--name")
    p.add_argument("-r", "--max-results", type=int)
    p.set_defaults(func=list_assets, group=group)

    p = verbs.add_parser("show", help=f"Show a {group} asset.")
    p.add_argument("-n", "--name", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--version")
    g.add_argument("-l", "--label")
    p.set_defaults(func=show, group=group)


def create(args: argparse.Namespace) -> Any:
    from amlocal import loader

    overrides = loader.parse_set(args.set)
    for key in ("name", "version", "path", "type", "image", "conda_file"):
        value = getattr(args, key, None)
        if value is not None:
            overrides.append({key: value})
    return _CREATE[args.group](Workspace(), Path(args.file), overrides)


def list_assets(args: argparse.Namespace) -> Any:
    ws = Workspace()
    if args.group == "model":
        c = assets.mlflow_client(ws)
        if args.name:
            found = c.search_model_versions(f"name='{args.name}'")
            items = sorted(
                (assets.model_record(mv) for mv in found), key=lambda r: -int(r["version"])
            )
        else:
            items = [
                {
                    "name": m.name,
                    "latest_version": max(
                        (int(v.version) for v in m.latest_versions), default=None
                    ),
                    "description": m.description,
                    "tags": dict(m.tags or {}),
                }
                for m in c.search_registered_models()
            ]
    else:
        records = ws.store.list(args.group, name=args.name)
        if args.name:
            items = [assets.public(r) for r in reversed(records)]
        else:  # one entry per name with its latest version, as az ml lists containers
            latest: dict[str, dict[str, Any]] = {}
            for r in records:
                latest[r["name"]] = {
                    "name": r["name"],
                    "latest_version": r["version"],
                    "description": r.get("description"),
                    "tags": r.get("tags", {}),
                }
            items = list(latest.values())
    return items[: args.max_results] if args.max_results else items


def show(args: argparse.Namespace) -> Any:
    ws = Workspace()
    if args.group == "model":
        ref = (
            f"azureml:{args.name}:{args.version}"
            if args.version
            else f"azureml:{args.name}@{args.label or 'latest'}"
        )
        name, version = assets.registered_model_version(ws, ref)
        return assets.model_record(assets.mlflow_client(ws).get_model_version(name, version))
    if not args.version and not args.label:
        raise InvalidInput(f"{args.group} show needs --version or --label")
    ref = (
        f"azureml:{args.name}:{args.version}"
        if args.version
        else f"azureml:{args.name}@{args.label}"
    )
    try:
        return assets.public(assets.get(ws, args.group, ref))
    except NotFound:
        raise
