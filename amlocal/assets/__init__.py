"""Registered assets: references, versions and the store records every asset kind shares.

Data, environments and components live in the workspace store; models live in the MLflow
model registry (assets.model, assets.model_registration). This package's root holds what
every kind and every caller needs: parsing `azureml:name[:version|@label]`, picking a
version, and registering an immutable version (assets.data, .environment, .component add
one kind each; assets.code snapshots code as Azure uploads it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace, public  # noqa: F401 (public: re-exported)

_REF = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@]+)|@(?P<label>[\w-]+))?$")


def parse_ref(ref: str) -> tuple[str, str | None, str | None] | None:
    """`azureml:name:version` / `azureml:name@latest` -> (name, version, label)."""
    m = _REF.match(ref.strip())
    if not m:
        return None
    return m["name"], m["version"], m["label"]


def _pick_version(
    ws: Workspace, kind: str, name: str, version: str | None, label: str | None
) -> str:
    versions = ws.store.versions(kind, name)
    if not versions:
        raise NotFound(
            f"{kind} '{name}' is not registered in this workspace "
            f"(register it with `amlocal {kind} create -f <file>`)"
        )
    if version:
        if version not in versions:
            raise NotFound(
                f"{kind} '{name}' has no version '{version}' (versions: {', '.join(versions)})"
            )
        return version
    if label not in (None, "latest"):
        raise InvalidInput(f"label '@{label}' is not supported for {kind} '{name}' (use @latest)")
    archived = {r["version"] for r in ws.store.list(kind, name=name) if r.get("_archived")}
    live = [v for v in versions if v not in archived]  # an archived version is never latest
    if not live:
        raise NotFound(f"{kind} '{name}' has no version that is not archived")
    return max(live, key=_version_key)


def _version_key(v: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", v))


def get(ws: Workspace, kind: str, ref: str) -> dict[str, Any]:
    """Resolve `azureml:name:version`, `azureml:name@latest` or `name` to a stored asset record
    (a registry's reference, `azureml://registries/...`, in that registry)."""
    if ref.startswith("azureml://registries/"):
        from amlocal.registries.refs import target

        ws, ref = target(ws, kind, ref)
    parsed = parse_ref(ref if ref.startswith("azureml:") else f"azureml:{ref}")
    if parsed is None:
        raise InvalidInput(
            f"'{ref}' is not a {kind} reference (expected azureml:<name>:<version> "
            f"or azureml:<name>@latest)"
        )
    name, version, label = parsed
    v = _pick_version(ws, kind, name, version, label)
    record = ws.store.get(kind, name, version=v)
    assert record is not None
    return record


def next_version(ws: Workspace, kind: str, name: str) -> str:
    nums = [int(v) for v in ws.store.versions(kind, name) if v.isdigit()]
    return str(max(nums, default=0) + 1)


FLAGS_DIR_PREFIX = "amlocal-flags-"  # `create` without --file writes its YAML in such a folder


def source_name(path: Path) -> str:
    """How errors name where an asset came from: its file, or the create flags."""
    if path.parent.name.startswith(FLAGS_DIR_PREFIX):
        return f"{path.stem} create flags"
    return str(path)


def register(
    ws: Workspace, kind: str, record: dict[str, Any], identity: str, where: Path
) -> dict[str, Any]:
    """Store a new asset version; re-creating an identical version is a no-op, a different
    one is an error naming both (asset versions are immutable in Azure ML)."""
    name, version = record["name"], record["version"]
    record.setdefault("tags", {})
    record["_identity"] = identity
    record["_source"] = source_name(where)
    if ws.store.insert_new(kind, name, record, version=version):
        return public(record)
    existing = ws.store.get(kind, name, version=version) or {}
    if existing.get("_identity") != identity:
        before = existing.get("_source") or "an earlier create"
        raise InvalidInput(
            f"{source_name(where)}: {kind} {name}:{version} already exists with different content "
            f"(registered from {before}); asset versions are immutable: bump `version:` "
            f"(or --version / --set version=N)"
        )
    return public(existing)


def asset_id(ws: Workspace, kind: str, name: str, version: str) -> str:
    plural = {"data": "data", "environment": "environments", "component": "components"}[kind]
    return "azureml:" + ws.arm_id(f"{plural}/{name}/versions/{version}")


def stable_json(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True, default=str)
