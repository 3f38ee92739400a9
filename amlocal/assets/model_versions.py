"""Azure model versions on MLflow's numbering.

Azure ML takes any string as a model version, in any order (Microsoft's scripts register
`$RANDOM` or `$(date +%s)`), and `@latest` is the most recently created version. MLflow numbers
versions itself (1, 2, 3... in creation order). So each version amlocal registers carries its
Azure version in the `azureml.version` tag on an MLflow version of MLflow's own number; a
version without the tag (a store written before, or a script's own `mlflow.register_model`)
is known by its MLflow number. Creation order is MLflow's order, so the latest is the highest
MLflow number.
"""

from __future__ import annotations

import re
from typing import Any

from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace

VERSION_TAG = "azureml.version"

# Versions become folder names (azureml-models/<name>/<version>/): Azure's asset versions are
# letters, digits, `.`, `_` and `-`; amlocal bounds the length as Azure bounds resource names.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_version(version: str, where: str) -> str:
    if not _VERSION.match(version) or ".." in version:
        raise InvalidInput(
            f"{where}: model version: '{version}' is not a valid version (letters, digits, "
            f"'.', '_' and '-', starting with a letter or digit, at most 128 characters)"
        )
    return version


def azure_version(mlflow_version: int | str, tag: str | None) -> str:
    return tag or str(mlflow_version)


def version_map(ws: Workspace, name: str) -> dict[str, int]:
    """{Azure version: MLflow version} of the live versions of `name`, oldest first. Two
    MLflow versions claiming one Azure version (a script registered MLflow's number N after
    `version: N` was given explicitly) resolve to the later one, as Azure's newest write."""
    from amlocal import tracking

    rows = tracking.model_version_rows(ws, name)
    if rows is None:
        rows = sorted(
            (int(mv.version), (mv.tags or {}).get(VERSION_TAG)) for mv in _mlflow_versions(ws, name)
        )
    found: dict[str, int] = {}
    for number, tag in rows:
        key = azure_version(number, tag)
        found.pop(key, None)  # re-insert: the later MLflow version wins and orders last
        found[key] = number
    return found


def _mlflow_versions(ws: Workspace, name: str) -> list[Any]:
    from amlocal.tracking import client

    try:
        return list(client(ws).search_model_versions(f"name='{name}'"))
    except Exception:
        return []


def latest(versions: dict[str, int]) -> str:
    """The most recently created Azure version (highest MLflow number)."""
    return max(versions, key=lambda v: versions[v])


def next_version(versions: dict[str, int]) -> str:
    """The version an unversioned `model create` gets: one above the highest integer version,
    as Azure auto-increments (string versions do not count)."""
    return str(max((int(v) for v in versions if v.isdigit()), default=0) + 1)


def mlflow_version(ws: Workspace, name: str, version: str) -> int:
    versions = version_map(ws, name)
    if version not in versions:
        if not versions:
            raise NotFound(f"model '{name}' is not registered in this workspace")
        raise NotFound(
            f"model '{name}' has no version '{version}' (versions: {', '.join(versions)})"
        )
    return versions[version]


def azure_version_of(ws: Workspace, name: str, number: int | str) -> str:
    """The Azure version of MLflow version `number` (an alias points at MLflow's number)."""
    for version, n in version_map(ws, name).items():
        if n == int(number):
            return version
    return str(number)
