"""`az ml` command groups, one module each, and the plumbing they share: az ml gives every
group the same flags for a verb on a named record and for a verb that reads a YAML
definition, so a group declares only the flags that are its own."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlocal.workspace import Workspace

Handler = Callable[..., Any]


def workspace() -> Workspace:
    """The workspace a handler acts on, imported when the handler runs, not at start-up."""
    from amlocal.workspace import Workspace

    return Workspace()


def tags_flag(pairs: list[str] | None) -> dict[str, str]:
    """`--tags a=1 b=2`, as az takes them (a bare key gets an empty value)."""
    from amlocal.errors import InvalidInput

    out = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        if not key:
            raise InvalidInput(f"--tags expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def overrides(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The verb's `--set KEY=VALUE ...` as azure-ai-ml params_override entries."""
    from amlocal.loader import parse_set

    return parse_set(getattr(args, "set", None))


def definition_verb(
    sp: Any,
    verb: str,
    func: Handler,
    text: str,
    *,
    endpoint: bool = False,
    file_required: bool = False,
) -> argparse.ArgumentParser:
    """A verb that reads a YAML definition: `-f`, `-n` (else the YAML's name), `-e` for a
    deployment's endpoint and `--set` overrides; the caller adds the group's own flags."""
    p = sp.add_parser(verb, help=text)
    p.add_argument("-f", "--file", required=file_required)
    p.add_argument("-n", "--name")
    if endpoint:
        p.add_argument("-e", "--endpoint-name", dest="endpoint_name")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=func)
    return p


def record_verb(
    sp: Any,
    verb: str,
    func: Handler,
    text: str,
    *,
    endpoint: bool = False,
    confirm: bool = False,
    no_wait: bool = False,
) -> argparse.ArgumentParser:
    """A verb on one named record: `-n`, `-e` for a deployment's endpoint, `-y` where az ml
    asks to confirm, `--no-wait` where it waits; the caller adds the group's own flags."""
    p = sp.add_parser(verb, help=text)
    p.add_argument("-n", "--name", required=True)
    if endpoint:
        p.add_argument("-e", "--endpoint-name", dest="endpoint_name", required=True)
    if confirm:
        p.add_argument("-y", "--yes", action="store_true")
    if no_wait:
        p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=func)
    return p
