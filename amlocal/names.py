"""Resource names, checked against Azure ML's naming rules before they are stored or become
paths, and the one place a state path under the workspace is built.

A name reaches amlocal from a YAML file, `-n/--name`, `--set name=...` or a pipeline step's
input (the deploy step); only the YAML's is validated by azure-ai-ml. So every name is
checked where it is stored (`Store.put`) and where it becomes a path (`under`), whatever
its source: a name like `../../x` or `Bad Name!` is refused with exit 2, never written.

Rules (Azure's, from azure-ai-ml and the REST specification):
- online/batch endpoints and deployments: 3-32 characters, a letter first, then letters,
  digits and '-', ending with a letter or digit (azure-ai-ml
  `EndpointConfigurations.NAME_REGEX_PATTERN`, `validate_endpoint_or_deployment_name`);
- jobs, data, environments, components, models: a letter or digit first, then letters,
  digits, '-', '_' (the REST `^[a-zA-Z0-9][a-zA-Z0-9\\-_]{0,254}$`) and '.', which Azure
  accepts in asset names (curated environments use it); versions likewise.
"""

from __future__ import annotations

import re
from pathlib import Path

from amlocal.errors import InvalidInput

_ENDPOINT = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_RESOURCE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,254}")
_ENDPOINT_KINDS = {"online-endpoint", "batch-endpoint"}
_DEPLOYMENT_KINDS = {"online-deployment", "batch-deployment"}


def endpoint(name: object, what: str = "endpoint") -> str:
    """An endpoint or deployment name (`what` says which, for the message)."""
    if not isinstance(name, str) or not 3 <= len(name) <= 32 or not _ENDPOINT.fullmatch(name):
        raise InvalidInput(
            f"invalid {what} name {name!r}: use 3-32 characters, a letter first, then "
            f"letters, digits or '-', ending with a letter or digit"
        )
    return name


def deployment(name: object) -> str:
    return endpoint(name, "deployment")


def checked(name: object, rule: re.Pattern[str], what: str, says: str, where: str = "") -> str:
    """`name` if it matches `rule`, else exit 2 naming `where` (a flag or key), the kind of
    name and the rule in words (`says`): one message shape for every naming rule."""
    if not isinstance(name, str) or not rule.fullmatch(name):
        raise InvalidInput(
            f"{where + ': ' if where else ''}invalid {what} name {name!r}: use {says}"
        )
    return name


def resource(name: object, what: str = "resource") -> str:
    """A job, asset or other resource name (or a version)."""
    return checked(
        name,
        _RESOURCE,
        what,
        "1-255 characters, a letter or digit first, then letters, digits, '-', '_' or '.'",
    )


def record(kind: str, name: str, version: str = "") -> None:
    """Check a store record's key: endpoints and deployments by Azure's endpoint rule
    (a deployment's key is `endpoint:deployment`), anything else by the resource rule."""
    label = kind.replace("-", " ")
    if kind in _ENDPOINT_KINDS:
        endpoint(name, label)
    elif kind in _DEPLOYMENT_KINDS:
        ep, sep, dep = name.partition(":")
        if not sep:
            raise InvalidInput(f"invalid {label} key {name!r}: expected endpoint:deployment")
        endpoint(ep, label.replace("deployment", "endpoint"))
        endpoint(dep, label)
    else:
        resource(name, label)
    if version:
        resource(version, f"{label} version")


def under(root: Path, *parts: str) -> Path:
    """`root/part/...`, refused unless every part is one plain path component and the result,
    resolved (symbolic links included), stays inside `root`: the choke point for state paths."""
    for part in parts:
        if (
            not isinstance(part, str)
            or not part
            or part in (".", "..")
            or "/" in part
            or "\\" in part
            or "\0" in part
        ):
            raise InvalidInput(f"invalid name {part!r}: it cannot be used as a folder name")
    base = root.resolve()
    path = base.joinpath(*parts)
    if not path.resolve().is_relative_to(base):
        raise InvalidInput(f"{path} resolves outside the workspace {base}; refusing to use it")
    return path
