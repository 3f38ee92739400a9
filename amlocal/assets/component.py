"""Component assets: `component create`, its local code snapshotted (assets.code) so a
registered version never changes under a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal.assets import asset_id, next_version, register, stable_json
from amlocal.assets.code import code_snapshot
from amlocal.hashing import text_digest
from amlocal.workspace import Workspace


def create_component(
    ws: Workspace, path: Path, overrides: list[dict] | None = None
) -> dict[str, Any]:
    from amlocal import loader
    from amlocal.snapshot import absolute_includes

    info = loader.validated(
        "component",
        path,
        overrides,
        lambda e: {"dict": e._to_dict(), "version": e.version, "includes": absolute_includes(e)},
        tag="-inc",
    )
    d = info["dict"]
    includes = info.get("includes") or []  # merged into the snapshot, as Azure uploads it
    d.pop("additional_includes", None)
    code = d.get("code")
    identity = text_digest(stable_json({k: v for k, v in d.items() if k != "code"}))
    if code and not str(code).startswith(("azureml:", "http")):
        code_path = Path(code) if Path(code).is_absolute() else (path.parent / code)
        digest, dest = code_snapshot(ws, code_path.resolve(), includes)
        d["code"] = str(dest)
        identity = text_digest(identity, digest)
    name = d["name"]
    version = str(info["version"]) if info["version"] else next_version(ws, "component", name)
    d.update(version=version, id=asset_id(ws, "component", name, version))
    return register(ws, "component", d, identity, path)
