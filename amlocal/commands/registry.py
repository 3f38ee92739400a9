"""`amlocal registry create|list|show|update|delete`: registries shared by every workspace of
the amlocal home (amlocal.registries)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    p = verbs.add_parser("create", help="Create a registry from a registry YAML.")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-n", "--name")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--tags", nargs="+", metavar="KEY=VALUE")
    p.add_argument("--display-name", dest="display_name", help="Display name of the registry.")
    p.add_argument(
        "--public-network-access",
        dest="public_network_access",
        help="Recorded (Enabled or Disabled); offline there is no network boundary.",
    )
    p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=create)

    p = verbs.add_parser("list", help="List the registries of this amlocal home.")
    p.set_defaults(func=list_registries)

    p = verbs.add_parser("show", help="Show a registry.")
    p.add_argument("-n", "--name", required=True)
    p.set_defaults(func=show)

    p = verbs.add_parser("update", help="Update a registry's description and tags.")
    p.add_argument("-f", "--file")
    p.add_argument("-n", "--name")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=update)

    p = verbs.add_parser("delete", help="Delete a registry and its assets.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=delete)


def _doc(args: argparse.Namespace) -> dict[str, Any]:
    from amlocal import loader, registries

    overrides = loader.parse_set(args.set)
    if args.name:
        overrides.append({"name": args.name})
    for pair in getattr(args, "tags", None) or []:
        key, _, value = pair.partition("=")
        overrides.append({f"tags.{key}": value})
    if getattr(args, "public_network_access", None):
        overrides.append({"public_network_access": args.public_network_access})
    return registries.load(Path(args.file), overrides)


def create(args: argparse.Namespace) -> Any:
    from amlocal import registries

    return registries.create(_doc(args), args.resource_group, args.file).show()


def list_registries(args: argparse.Namespace) -> Any:
    from amlocal import registries

    return [registries.get(n).show() for n in registries.names()]


def show(args: argparse.Namespace) -> Any:
    from amlocal import registries

    return registries.get(args.name).show()


def update(args: argparse.Namespace) -> Any:
    """`registry update -f registry.yml`, or `-n R --set description=... tags.k=v`."""
    from amlocal import loader, registries

    if args.file:
        doc = _doc(args)
        return registries.update(str(doc["name"]), doc, args.file).show()
    if not args.name:
        raise InvalidInput("registry update needs --file, or --name and --set")
    rec = registries.get(args.name).record
    doc = {"description": rec.get("description"), "tags": dict(rec.get("tags") or {})}
    for item in loader.parse_set(args.set):
        for key, value in item.items():
            if key == "description":
                doc["description"] = value
            elif key.startswith("tags."):
                doc["tags"][key[5:]] = str(value)
            else:
                raise InvalidInput(f"--set {key}: only description and tags.<key> can change")
    return registries.update(args.name, doc, "--set").show()


def delete(args: argparse.Namespace) -> Any:
    from amlocal import registries

    registries.delete(args.name)
    return None
