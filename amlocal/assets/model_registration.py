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
from amlocal.assets.model_versions import (
    VERSION_TAG,
    check_version,
    latest,
    next_version,
    version_map,
)
from amlocal.errors import InvalidInput
from amlocal.hashing import tree_digest
from amlocal.workspace import Workspace


def create_model(ws: Workspace, path: Path, overrides: list[dict] | None = None) -> dict[str, Any]:
    """`az ml model create -f`: a new version unless `version:` names one."""
    from amlocal import loader

    entity = loader.load("model", path, overrides)
    return register_model(ws, entity, path.parent, where=str(path))


def register_model(
    ws: Workspace, entity: Any, base: Path, *, where: str, reuse_latest: bool = False
) -> dict[str, Any]:
    """Register an azure-ai-ml Model entity (a model YAML or a deployment's inline model) in
    the MLflow registry, as Azure registers it: an explicit version is that version, any
    string in any order (the same content again is a no-op; other content is an error naming
    both), no version is one above the highest integer version. `reuse_latest`: an
    unversioned inline model whose content is the latest version's reuses it (a deployment
    update does not grow the registry). The Azure version rides on MLflow's own number as
    the `azureml.version` tag (assets.model_versions)."""
    src = resolve_path(ws, str(entity.path), base) if entity.path else None
    if src is None or not src.exists():
        raise InvalidInput(f"{where}: model path: {entity.path} does not exist")
    name = str(entity.name)
    try:
        names.resource(name, "model")  # `../../x` or `a b` never reach MLflow or a path
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: name: {exc}") from None
    version = str(entity.version) if entity.version not in (None, "") else None
    if version is not None:
        check_version(version, where)
    # One registration at a time per workspace: two `--version N` at once could each claim N
    # (the claim check below still guards registrations by other means, e.g. a step's MLflow).
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
    existing = version_map(ws, name)
    if version is not None and version in existing:
        return _same_or_conflict(c, name, existing[version], digest, src, where)
    if version is None and reuse_latest and existing:
        mv = c.get_model_version(name, str(existing[latest(existing)]))
        if (mv.tags or {}).get("azureml.content_digest") == digest:
            return model_record(mv)
    dest = _upload(ws, src, digest, _leaf(str(entity.path), src))
    try:
        c.get_registered_model(name)
    except Exception:
        c.create_registered_model(name, description=entity.description)
    tags = {str(k): str(v) for k, v in (entity.tags or {}).items()}
    tags["azureml.model_type"] = str(entity.type or "custom_model")
    tags["azureml.content_digest"] = digest
    tags[VERSION_TAG] = version or next_version(existing)
    if str(entity.path).startswith("azureml://jobs/"):  # lineage: Azure's model `job_name`
        tags["azureml.job_name"] = str(entity.path).split("/")[3]
    mv = c.create_model_version(name, source=str(dest), tags=tags, description=entity.description)
    for _ in range(20):  # another process registered the same version meanwhile?
        now = version_map(ws, name)
        first = min((n for v, n in _claims(ws, name) if v == tags[VERSION_TAG]), default=None)
        if first is None or first == int(mv.version):
            return model_record(c.get_model_version(name, mv.version))
        if version is not None:  # theirs came first: same content is theirs, else a conflict
            c.delete_model_version(name, mv.version)
            return _same_or_conflict(c, name, first, digest, src, where)
        tags[VERSION_TAG] = next_version(now)  # an automatic version: take the next one
        c.set_model_version_tag(name, mv.version, VERSION_TAG, tags[VERSION_TAG])
    c.delete_model_version(name, mv.version)
    raise InvalidInput(f"{where}: model {name} is being registered concurrently; retry")


def _claims(ws: Workspace, name: str) -> list[tuple[str, int]]:
    """(Azure version, MLflow version) of every live version, duplicates kept."""
    from amlocal import tracking
    from amlocal.assets.model_versions import azure_version

    rows = tracking.model_version_rows(ws, name)
    if rows is None:
        found = mlflow_client(ws).search_model_versions(f"name='{name}'")
        rows = [(int(mv.version), (mv.tags or {}).get(VERSION_TAG)) for mv in found]
    return [(azure_version(n, tag), n) for n, tag in rows]


def _same_or_conflict(
    c: Any, name: str, number: int, digest: str, src: Path, where: str
) -> dict[str, Any]:
    mv = c.get_model_version(name, str(number))
    if (mv.tags or {}).get("azureml.content_digest") == digest:
        return model_record(mv)
    record = model_record(mv)
    raise InvalidInput(
        f"{where}: model {name}:{record['version']} already exists with different content "
        f"(registered from {mv.source}; this file gives {src}); asset versions are "
        f"immutable: bump `version:` (or --version / --set version=N)"
    )


def _leaf(path: str, src: Path) -> str:
    """The registered path's last component as Azure keeps it: a job URI's own last part
    (`.../paths/model`, `runs:/<job>/model`: `model`, even where MLflow 3 stored the files
    as `models/m-<id>/artifacts`), else the local file or folder's name."""
    if path.startswith(("azureml://", "runs:/")):
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if last and last not in (".", "..") and ":" not in last:
            return last
    return src.name


def _upload(ws: Workspace, src: Path, digest: str, leaf: str) -> Path:
    """Copy the model into the workspace, as Azure uploads it to LocalUpload/<hash>/<leaf>."""
    dest = ws.mlflow_artifact_root / "model-uploads" / digest[:32] / leaf
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
