"""Environment assets: `environment create`, versioned by what defines an environment
(image, conda file, build context), as Azure auto-increments only on a change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal.assets import asset_id, next_version, register, stable_json
from amlocal.hashing import text_digest
from amlocal.workspace import Workspace, public


def environment_record(entity: Any) -> dict[str, Any]:
    """The parts of an environment that define it (and so its reuse identity)."""
    d = entity._to_dict()
    conda = getattr(entity, "conda_file", None)
    if conda is not None:
        d["conda_file"] = conda  # azure-ai-ml inlines the conda file's content as a dict
    return d


def create_environment(
    ws: Workspace, path: Path, overrides: list[dict] | None = None
) -> dict[str, Any]:
    from amlocal import loader

    info = loader.validated(
        "environment",
        path,
        overrides,
        lambda e: {"dict": environment_record(e), "name": e.name, "version": e.version},
        files=loader.source_files(path),
    )
    d, name = info["dict"], info["name"]
    identity = text_digest(
        stable_json(d.get("image")), stable_json(d.get("conda_file")), stable_json(d.get("build"))
    )
    version = str(info["version"]) if info["version"] else None
    if version is None:
        # Azure auto-increments environment versions; an identical definition is not re-created.
        for existing in reversed(ws.store.list("environment", name=name)):
            if existing.get("_identity") == identity:
                return public(existing)
        version = next_version(ws, "environment", name)
    d.update(name=name, version=version, id=asset_id(ws, "environment", name, version))
    return register(ws, "environment", d, identity, path)
