"""Model registration: `model create` and a deployment's inline model into the MLflow
registry, with Azure's version rules (explicit versions immutable, none means the next)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amlocal import names
from amlocal.assets.data import resolve_path
from amlocal.assets.model import mlflow_client, model_record
from amlocal.errors import InvalidInput
from amlocal.hashing import tree_digest
from amlocal.workspace import Workspace

MAX_VERSION_GAP = 1000  # explicit model versions above the next one are filled with placeholders


def create_model(ws: Workspace, path: Path, overrides: list[dict] | None = None) -> dict[str, Any]:
    """`az ml model create -f`: a new version unless `version:` names one."""
    from amlocal import loader

    entity = loader.load("model", path, overrides)
    return register_model(ws, entity, path.parent, where=str(path))


def register_model(
    ws: Workspace, entity: Any, base: Path, *, where: str, reuse_latest: bool = False
) -> dict[str, Any]:
    """Register an azure-ai-ml Model entity (a model YAML or a deployment's inline model) in
    the MLflow registry, as Azure registers it: an explicit version is that version (the
    same content again is a no-op; other content is an error naming both), no version is
    the next one. `reuse_latest`: an unversioned inline model whose content is the latest
    version's reuses it (a deployment update does not grow the registry)."""
    name = str(entity.name)
    try:
        names.resource(name, "model")  # `../../x` or `a b` never reach MLflow or a path
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: name: {exc}") from None
    src = resolve_path(ws, str(entity.path), base) if entity.path else None
    if src is None or not src.exists():
        raise InvalidInput(f"{where}: model path: {entity.path} does not exist")
    version = str(entity.version) if entity.version not in (None, "") else None
    if version is not None and not version.isdigit():
        raise InvalidInput(
            f"{where}: model version: '{version}': the local model registry (MLflow) numbers "
            f"versions 1, 2, 3...; use an integer version"
        )
    # One registration at a time per workspace: two `--version N` at once each made
    # placeholders below N and took a number the other expected, then deleted it, so N was
    # burned for ever (MLflow never reuses a deleted number).
    with _registry_lock(ws):
        return _register(ws, entity, src, name, version, where, reuse_latest)


@contextlib.contextmanager
def _registry_lock(ws: Workspace) -> Iterator[None]:
    import fcntl

    ws.home.mkdir(parents=True, exist_ok=True)
    with open(ws.home / "model-registry.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _register(
    ws: Workspace,
    entity: Any,
    src: Path,
    name: str,
    version: str | None,
    where: str,
    reuse_latest: bool,
) -> dict[str, Any]:
    digest = tree_digest(src, store=ws.store)
    c = mlflow_client(ws)
    existing = {str(mv.version): mv for mv in _search_versions(c, name)}
    if version is not None and version in existing:
        return _same_or_conflict(existing[version], digest, src, where)
    if version is None and reuse_latest and existing:
        latest = existing[max(existing, key=int)]
        if (latest.tags or {}).get("azureml.content_digest") == digest:
            return model_record(latest)
    dest = _upload(ws, src, digest)
    try:
        c.get_registered_model(name)
    except Exception:
        c.create_registered_model(name, description=entity.description)
    tags = {str(k): str(v) for k, v in (entity.tags or {}).items()}
    tags["azureml.model_type"] = str(entity.type or "custom_model")
    tags["azureml.content_digest"] = digest
    if version is not None:
        _fill_versions_below(ws, c, name, int(version), dest, where)
    mv = c.create_model_version(name, source=str(dest), tags=tags, description=entity.description)
    if version is not None and str(mv.version) != version:  # registered concurrently
        c.delete_model_version(name, mv.version)
        raise InvalidInput(f"{where}: model {name}:{version} was registered meanwhile; retry")
    return model_record(mv)


def _search_versions(c: Any, name: str) -> list[Any]:
    try:
        return list(c.search_model_versions(f"name='{name}'"))
    except Exception:
        return []


def _same_or_conflict(mv: Any, digest: str, src: Path, where: str) -> dict[str, Any]:
    if (mv.tags or {}).get("azureml.content_digest") == digest:
        return model_record(mv)
    raise InvalidInput(
        f"{where}: model {mv.name}:{mv.version} already exists with different content "
        f"(registered from {mv.source}; this file gives {src}); asset versions are "
        f"immutable: bump `version:` (or --version / --set version=N)"
    )


def _upload(ws: Workspace, src: Path, digest: str) -> Path:
    """Copy the model into the workspace, as Azure uploads it to LocalUpload/<hash>/<leaf>."""
    dest = ws.mlflow_artifact_root / "model-uploads" / digest[:32] / src.name
    if not dest.exists():
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp)
        try:
            tmp.rename(dest)
        except OSError:  # another process uploaded the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _fill_versions_below(
    ws: Workspace, c: Any, name: str, version: int, source: Path, where: str
) -> None:
    """MLflow numbers versions itself (max + 1, deleted ones included): reach an explicit
    version by creating and deleting placeholders below it, so only `version` exists."""
    from amlocal import tracking

    current = tracking.max_model_version(ws, name)
    if current is None:
        current = max((int(v.version) for v in _search_versions(c, name)), default=0)
    if version <= current:
        raise InvalidInput(
            f"{where}: model {name}:{version} cannot be registered: version {version} was "
            f"used before and deleted (the next free version is {current + 1})"
        )
    if version - current > MAX_VERSION_GAP:
        raise InvalidInput(
            f"{where}: model version {version} is more than {MAX_VERSION_GAP} above the "
            f"latest ({current}) of model '{name}'"
        )
    for _ in range(version - current - 1):
        mv = c.create_model_version(name, source=str(source), tags={"azureml.placeholder": "1"})
        c.delete_model_version(name, mv.version)
