"""Azure ML registries, locally: versioned models, components, environments and data shared by
every workspace of one amlocal home.

A registry is `<home>/registries/<name>/`, with `registry.json` (its YAML's fields) and the
layout of a workspace's asset storage: `store.db` for data, environments and components,
`mlflow.db` and `mlartifacts/` for models, `datastores/` for uploaded files. So a `Registry`
is a `Workspace` whose jobs and endpoints are never used, and every asset function
(`create_environment(reg, ...)`, `assets.get(reg, ...)`) works on it unchanged; the registry's
own rules (named assets only, immutable versions, dependencies in the registry) are
amlocal.registries.rules. References (`azureml://registries/<r>/...`) are
amlocal.registries.refs.

Offline there are no regions, replication or RBAC: `location` and `replication_locations` are
recorded as given, and any workspace of the home may read and write (docs/local-vs-azure.md).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlocal import names as naming
from amlocal.errors import InvalidInput
from amlocal.workspace import Workspace

REGISTRIES_DIR = "registries"
REGISTRY_FILE = "registry.json"
SYSTEM_REGISTRY = "azureml"  # Microsoft's: curated environments (amlocal.environments.curated)
# Azure's registry name rule (azure-ai-ml RegistrySchema): a letter or digit first, then
# letters, digits, '-' and '_', 2-33 characters in all.
_RULE = "2-33 characters, a letter or digit first, then letters, digits, '-' or '_'"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{1,32}")
ARM_PREFIX = "/subscriptions/local/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices"


def check_name(name: object, where: str = "--registry-name") -> str:
    return naming.checked(name, _NAME, "registry", _RULE, where)


def base_dir(home: Path | None = None) -> Path:
    from amlocal import workspaces

    return (home or workspaces.root()) / REGISTRIES_DIR


@dataclass
class Registry(Workspace):
    """A registry's storage, used through the Workspace interface by the asset code."""

    registry_name: str = ""

    @property
    def name(self) -> str:
        return self.registry_name

    @property
    def root(self) -> Path:
        return self.home.parent.parent

    @property
    def mlflow_tracking_uri(self) -> str:
        """Always the registry's own store: a user's MLFLOW_TRACKING_URI is a workspace's."""
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def record(self) -> dict[str, Any]:
        from amlocal.workspaces import _read

        return _read(self.home / REGISTRY_FILE)

    def arm_id(self, path: str = "") -> str:
        rg = self.record.get("resource_group") or "local"
        base = f"{ARM_PREFIX.format(rg=rg)}/registries/{self.name}"
        return base + (f"/{path}" if path else "")

    def asset_uri(self, kind: str, name: str, version: str) -> str:
        """The asset's id as Azure shows it: `azureml://registries/<r>/<kind>s/<n>/versions/<v>`."""
        plural = "data" if kind == "data" else f"{kind}s"
        return f"azureml://registries/{self.name}/{plural}/{name}/versions/{version}"

    def show(self) -> dict[str, Any]:
        rec = self.record
        return {
            "name": self.name,
            "location": rec.get("location"),
            "description": rec.get("description"),
            "tags": rec.get("tags") or {},
            "replication_locations": rec.get("replication_locations") or [],
            "public_network_access": rec.get("public_network_access"),
            "resource_group": rec.get("resource_group") or "local",
            "id": self.arm_id(),
            "mlflow_registry_uri": f"azureml://registries/{self.name}",
            "creation_context": {"created_at": rec.get("created_at")},
        }


def get(name: str, home: Path | None = None) -> Registry:
    """The registry `name` of this home; an unknown one is refused with exit 2."""
    check_name(name)
    folder = base_dir(home) / name
    if not (folder / REGISTRY_FILE).is_file():
        raise InvalidInput(
            f"--registry-name: registry '{name}' does not exist in the amlocal home "
            f"{folder.parent.parent}; create it with `amlocal registry create -f <registry.yml>`"
        )
    return Registry(home=folder, registry_name=name)


def names(home: Path | None = None) -> list[str]:
    parent = base_dir(home)
    if not parent.is_dir():
        return []
    return [
        c.name
        for c in sorted(parent.iterdir())
        if not c.name.startswith(".") and (c / REGISTRY_FILE).is_file()
    ]


_KEYS = ("name", "location", "description", "tags", "replication_locations")
_UPDATABLE = ("description", "tags")


def load(file: Path, overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """A registry YAML as azure-ai-ml's `load_registry` reads it (the registry schema)."""
    from amlocal import loader

    entity = loader.load("registry", file, overrides)
    d = dict(entity._to_dict())
    out: dict[str, Any] = {k: d.get(k) for k in _KEYS}
    out["replication_locations"] = [
        {"location": r.get("location")} for r in d.get("replication_locations") or []
    ]
    out["public_network_access"] = d.get("public_network_access")
    out["tags"] = dict(out.get("tags") or {})
    return out


def create(doc: dict[str, Any], resource_group: str | None, where: str) -> Registry:
    """A new registry folder, made whole (a partial folder renamed into place). Creating one
    that exists with the same name is an update of its description and tags, as ARM does."""
    from amlocal.workspaces import write_json

    name = check_name(doc.get("name"), f"{where}: name")
    if name == SYSTEM_REGISTRY:
        raise InvalidInput(
            f"{where}: name: '{SYSTEM_REGISTRY}' is Microsoft's system registry; pick another name"
        )
    if not doc.get("location"):
        raise InvalidInput(f"{where}: location: a registry needs its primary region")
    folder = base_dir() / name
    if (folder / REGISTRY_FILE).is_file():
        return update(name, doc, where)
    doc = {
        **doc,
        "resource_group": resource_group or "local",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f".{name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    write_json(partial / REGISTRY_FILE, doc)
    try:
        partial.rename(folder)
    except OSError:  # made meanwhile by another process: theirs stands
        shutil.rmtree(partial, ignore_errors=True)
    return get(name)


def update(name: str, doc: dict[str, Any], where: str) -> Registry:
    """Description and tags change; name, location and regions are fixed once created."""
    from amlocal.workspaces import write_json

    reg = get(name)
    rec = reg.record
    for key in ("location",):
        if doc.get(key) and doc[key] != rec.get(key):
            raise InvalidInput(
                f"{where}: {key}: registry '{name}' is in {rec.get(key)!r}; a registry's "
                f"primary region cannot change"
            )
    for key in _UPDATABLE:
        if doc.get(key) is not None:
            rec[key] = doc[key]
    if doc.get("replication_locations"):
        rec["replication_locations"] = doc["replication_locations"]
    write_json(reg.home / REGISTRY_FILE, rec)
    return get(name)


def delete(name: str) -> None:
    """Remove a registry amlocal made (its folder holds registry.json): first renamed aside,
    so a half-deleted registry is never found by name."""
    reg = get(name)
    trash = reg.home.with_name(f".{name}.{os.getpid()}.deleted")
    reg.home.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
