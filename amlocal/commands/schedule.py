"""`amlocal schedule ...`: az ml's schedule verbs; a local daemon fires enabled schedules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amlocal.commands import definition_verb, record_verb
from amlocal.commands import workspace as _ws
from amlocal.errors import InvalidInput


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    for verb, func, text in (
        ("create", create, "Create a schedule from a YAML file (enabled)."),
        ("update", update, "Update a schedule from a YAML file or with --set."),
    ):
        p = definition_verb(verbs, verb, func, text, file_required=verb == "create")
        p.add_argument("--no-wait", action="store_true")

    p = verbs.add_parser("list", help="List schedules.")
    p.add_argument("-r", "--max-results", type=int)
    p.add_argument(
        "--list-view-type",
        choices=["enabled_only", "disabled_only", "all"],
        default="enabled_only",
    )
    p.set_defaults(func=list_schedules)

    for verb, fn, text in (
        ("show", show, "Show a schedule."),
        ("enable", enable, "Enable a schedule (starts the scheduler)."),
        ("disable", disable, "Disable a schedule."),
        ("delete", delete, "Delete a schedule."),
        ("trigger", trigger, "Run a schedule's job now."),
    ):
        waits = verb in ("enable", "disable", "delete")
        p = record_verb(verbs, verb, fn, text, confirm=verb == "delete", no_wait=waits)
        if verb == "trigger":
            p.add_argument("--schedule-time", help="the fire time to record (ISO 8601)")


def _out(ws: Any, name: str) -> dict[str, Any]:
    from amlocal.schedules import definition as sd

    return sd.show(sd.get(ws, name))


def create(args: argparse.Namespace) -> Any:
    from amlocal.loader import parse_set
    from amlocal.schedules import daemon
    from amlocal.schedules import definition as sd

    ws = _ws()
    record = sd.load(ws, Path(args.file), parse_set(args.set), args.name)
    if not ws.store.insert_new(sd.KIND, record["name"], record):
        raise InvalidInput(
            f"schedule '{record['name']}' already exists; use `schedule update` to change it"
        )
    daemon.ensure(ws)
    return _out(ws, record["name"])


def update(args: argparse.Namespace) -> Any:
    from amlocal.loader import parse_set
    from amlocal.schedules import daemon
    from amlocal.schedules import definition as sd

    ws = _ws()
    if args.file:
        new = sd.load(ws, Path(args.file), parse_set(args.set), args.name)
    elif args.name:
        old = sd.get(ws, args.name)
        new = sd.load(ws, Path(old["_source"]), parse_set(args.set), args.name)
    else:
        raise InvalidInput("--file or --name is required")
    old = sd.get(ws, new["name"])
    # The firing history and the enabled state survive an update (as on Azure).
    for key in ("_last_fired", "_created", "is_enabled", "_baseline"):
        if key in old:
            new[key] = old[key]
    ws.store.put(sd.KIND, new["name"], new)
    daemon.ensure(ws)
    return _out(ws, new["name"])


def list_schedules(args: argparse.Namespace) -> Any:
    from amlocal.schedules import daemon
    from amlocal.schedules import definition as sd

    ws = _ws()
    daemon.ensure(ws)  # after a reboot, enabled schedules fire again once anyone looks
    records = ws.store.list(sd.KIND)
    view = args.list_view_type
    if view != "all":
        records = [r for r in records if bool(r.get("is_enabled")) == (view == "enabled_only")]
    if args.max_results:
        records = records[: args.max_results]
    if args.output == "table":
        return [
            {
                "name": r["name"],
                "trigger": r["trigger"].get("type"),
                "is_enabled": r.get("is_enabled"),
                "action": r["_action"]["type"],
                "last_fired": r.get("_last_fired"),
            }
            for r in records
        ]
    return [sd.show(r) for r in records]


def show(args: argparse.Namespace) -> Any:
    from amlocal.schedules import daemon

    ws = _ws()
    out = _out(ws, args.name)
    daemon.ensure(ws)
    return out


def _set_enabled(name: str, enabled: bool) -> Any:
    from amlocal.schedules import daemon
    from amlocal.schedules import definition as sd

    ws = _ws()
    sd.get(ws, name)

    def flip(r: dict[str, Any]) -> None:
        if enabled and not r.get("is_enabled"):
            r["_baseline"] = sd.iso(sd.now())  # firings missed while disabled never run
        r["is_enabled"] = enabled

    ws.store.update(sd.KIND, name, flip)
    daemon.ensure(ws)
    return _out(ws, name)


def enable(args: argparse.Namespace) -> Any:
    return _set_enabled(args.name, True)


def disable(args: argparse.Namespace) -> Any:
    return _set_enabled(args.name, False)


def delete(args: argparse.Namespace) -> Any:
    from amlocal.schedules import definition as sd

    ws = _ws()
    record = sd.get(ws, args.name)
    if record.get("is_enabled"):  # as on Azure: disable a schedule before deleting it
        raise InvalidInput(
            f"schedule '{args.name}' is enabled; run `schedule disable -n {args.name}` first"
        )
    ws.store.delete(sd.KIND, args.name)
    return None


def trigger(args: argparse.Namespace) -> Any:
    """Run the schedule's action once now; the job carries the schedule's name."""
    from amlocal.commands.job import public
    from amlocal.schedules import definition as sd
    from amlocal.schedules.triggers import parse_time, zone

    ws = _ws()
    record = sd.get(ws, args.name)
    try:
        when = parse_time(args.schedule_time, zone("UTC"))  # no offset: UTC
    except InvalidInput:
        raise InvalidInput(f"--schedule-time: {args.schedule_time!r} is not ISO 8601") from None
    job = sd.fire(ws, record, when or sd.now())
    return public(job)
