"""`amlocal compute create|show|list|delete|update`, as `az ml compute` takes them.

Offline every job runs on this machine, so a compute is only recorded in the workspace (and
shown back in Azure's shape), so that scripts that provision a cluster before they submit
jobs run unchanged. A job naming a compute that was never created still runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from amlocal.commands import definition_verb, record_verb
from amlocal.commands import workspace as _ws
from amlocal.errors import InvalidInput, NotFound

KIND = "compute"
NOTE = "amlocal: compute '{name}' recorded; offline every job runs on this machine."
TYPES = ("amlcompute", "computeinstance", "kubernetes", "virtualmachine", "attached")
# az ml compute create's flags -> YAML keys.
FLAG_KEYS = {
    "type": "type",
    "size": "size",
    "min_instances": "min_instances",
    "max_instances": "max_instances",
    "idle_time_before_scale_down": "idle_time_before_scale_down",
    "tier": "tier",
    "description": "description",
    "location": "location",
    "resource_id": "resource_id",
    "namespace": "namespace",
}


def _note(name: str) -> None:
    sys.stderr.write(NOTE.format(name=name) + "\n")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    """The compute's settings from --file (validated by azure-ai-ml) or the flags."""
    from amlocal import loader

    overrides = loader.parse_set(args.set)
    spec: dict[str, Any] = {}
    if args.file:
        entity = loader.load(KIND, Path(args.file), overrides)
        spec = dict(entity._to_dict())
    else:
        for flag, key in FLAG_KEYS.items():
            value = getattr(args, flag, None)
            if value is not None:
                spec[key] = value
        if getattr(args, "identity_type", None):
            spec["identity"] = {"type": args.identity_type}
        for item in overrides:
            spec.update(item)
    if args.name:
        spec["name"] = args.name
    if not spec.get("name"):
        raise InvalidInput("compute create needs --name or `name:` in --file")
    kind = str(spec.get("type") or "amlcompute").lower()
    if kind not in TYPES:
        raise InvalidInput(f"--type {kind}: expected one of {', '.join(TYPES)}")
    spec["type"] = kind
    return spec


def _record(ws: Any, spec: dict[str, Any]) -> dict[str, Any]:
    name = spec["name"]
    rec = {k: v for k, v in spec.items() if v is not None}
    if rec["type"] == "amlcompute":
        rec.setdefault("size", "STANDARD_DS3_V2")
        rec.setdefault("tier", "dedicated")
        rec.setdefault("min_instances", 0)
        rec.setdefault("max_instances", 1)
        rec.setdefault("idle_time_before_scale_down", 120)
    rec.update(
        id=ws.arm_id(f"computes/{name}"),
        location="local",
        provisioning_state="Succeeded",
    )
    rec.setdefault("resource_id", None)
    return rec


def create(args: argparse.Namespace, must_exist: bool = False) -> Any:
    from amlocal.workspace import public

    ws = _ws()
    spec = _spec(args)
    existing = ws.store.get(KIND, spec["name"])
    if existing is None and must_exist:
        raise NotFound(f"compute '{spec['name']}' does not exist (create it first)")
    rec = _record(ws, {**public(existing or {}), **spec})
    ws.store.put(KIND, rec["name"], rec)
    _note(rec["name"])
    return public(rec)


def update(args: argparse.Namespace) -> Any:
    return create(args, must_exist=True)


def show(args: argparse.Namespace) -> Any:
    from amlocal.workspace import public

    return public(_ws().store.require(KIND, args.name, f"compute '{args.name}' does not exist"))


def list_computes(args: argparse.Namespace) -> Any:
    from amlocal.workspace import public

    items = [public(r) for r in _ws().store.list(KIND)]
    if args.type:
        items = [r for r in items if r.get("type") == args.type.lower()]
    return items[: args.max_results] if args.max_results else items


def delete(args: argparse.Namespace) -> Any:
    ws = _ws()
    ws.store.require(KIND, args.name, f"compute '{args.name}' does not exist")
    ws.store.delete(KIND, args.name)
    return None


def _noop(args: argparse.Namespace) -> Any:
    """start/stop/restart of a compute instance: nothing to do offline."""
    rec = show(args)
    _note(args.name)
    return rec


def add_verbs(sp: Any, group: str) -> None:
    for verb, func, text in (
        ("create", create, "Record a compute (offline every job runs on this machine)."),
        ("attach", create, "Record an attached compute (Kubernetes, VM)."),
        ("update", update, "Update a recorded compute."),
    ):
        p = definition_verb(sp, verb, func, text)
        p.add_argument("-t", "--type")
        p.add_argument("--size")
        p.add_argument("--min-instances", dest="min_instances", type=int)
        p.add_argument("--max-instances", dest="max_instances", type=int)
        p.add_argument(
            "--idle-time-before-scale-down", dest="idle_time_before_scale_down", type=int
        )
        p.add_argument("--tier")
        p.add_argument("--description")
        p.add_argument("-l", "--location")
        p.add_argument("--identity-type", dest="identity_type")
        p.add_argument("--user-assigned-identities")
        p.add_argument("--admin-username")
        p.add_argument("--admin-password")
        p.add_argument("--ssh-key-value")
        p.add_argument("--vnet-name")
        p.add_argument("--subnet")
        p.add_argument("--enable-node-public-ip")
        p.add_argument("--tags", nargs="+")
        p.add_argument("--resource-id", dest="resource_id")
        p.add_argument("--namespace")
        p.add_argument("--no-wait", action="store_true")

    for verb, func, text in (
        ("show", show, "Show a recorded compute."),
        ("delete", delete, "Delete a recorded compute."),
        ("detach", delete, "Forget an attached compute."),
        ("start", _noop, "Accepted; nothing to start offline."),
        ("stop", _noop, "Accepted; nothing to stop offline."),
        ("restart", _noop, "Accepted; nothing to restart offline."),
    ):
        record_verb(sp, verb, func, text, confirm=verb == "delete", no_wait=verb != "show")

    p = sp.add_parser("list", help="List recorded computes.")
    p.add_argument("-t", "--type")
    p.add_argument("-r", "--max-results", type=int)
    p.set_defaults(func=list_computes)
