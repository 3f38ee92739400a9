"""Registered models as jobs and deployments see them: a reference resolved to a version
in the MLflow model registry, and its files in the workspace as Azure mounts them.

Resolving a model reads versions straight from the store where it can, so it does not import
MLflow; registering one is assets.model_registration.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from amlocal.assets import parse_ref
from amlocal.assets.model_versions import (
    VERSION_TAG,
    azure_version,
    azure_version_of,
    latest,
    mlflow_version,
    version_map,
)
from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace

# Azure mounts a registered model at /var/azureml-app/azureml-models/<name>/<version>/ and
# keeps the registered path's last component below it (a folder `model/` is found at
# $AZUREML_MODEL_DIR/model/..., a file `x.pkl` at $AZUREML_MODEL_DIR/x.pkl).
MODELS_DIR = "azureml-models"


def mlflow_client(ws: Workspace) -> Any:
    from amlocal.tracking import client

    return client(ws)


def model_dir(ws: Workspace, ref: str, base: Path | None = None) -> Path:
    """A model as a job input sees it: the registered path itself (`azureml:name:version`,
    `@label`, `models:/...`, a registry's `azureml://registries/...`), or a local path."""
    if ref.startswith("azureml://registries/"):
        from amlocal.registries.refs import target

        ws, ref = target(ws, "model", ref)
    if ref.startswith(("azureml:", "models:/")):
        return registered_model_path(ws, *registered_model_version(ws, ref))
    p = Path(ref.removeprefix("file://"))
    p = p if p.is_absolute() else (base or Path.cwd()) / p
    if not p.exists():
        raise InvalidInput(f"model path {p} does not exist")
    return p.resolve()


def registered_model_path(ws: Workspace, name: str, version: str) -> Path:
    """The registered path (folder or file) inside the version's AZUREML_MODEL_DIR."""
    root = registered_model_files(ws, name, version)
    children = [c for c in root.iterdir() if not c.name.startswith(".")]
    return children[0] if len(children) == 1 else root


def registered_model_files(ws: Workspace, name: str, version: str) -> Path:
    """AZUREML_MODEL_DIR for a registered model version: its files downloaded once into the
    workspace under the registered path's last component (Azure mounts them); concurrent
    first downloads each use their own partial folder."""
    dest = ws.under(MODELS_DIR, name, version)
    if dest.exists():
        return dest
    from amlocal import tracking

    number = str(mlflow_version(ws, name, version))
    location = tracking.model_location(ws, name, number)
    if location is None:
        mv = mlflow_client(ws).get_model_version(name, number)
        location = getattr(mv, "storage_location", None) or mv.source
    leaf = _model_leaf(ws, str(location))
    tmp = dest.with_name(f"{version}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    local = _local_path(str(location))
    if local is not None and local.is_file():
        shutil.copy2(local, tmp / leaf)
    else:
        tracking.download_model(ws, name, number, str(tmp / leaf))
    try:
        tmp.rename(dest)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _local_path(uri: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    if uri.startswith("/"):
        return Path(uri)
    if uri.startswith("file://") and not urlparse(uri).netloc:
        return Path(unquote(urlparse(uri).path))
    return None


_LOGGED_MODEL = re.compile(r"/models/(?P<id>m-[0-9a-f]+)/artifacts/?$")


def _model_leaf(ws: Workspace, location: str) -> str:
    """The registered path's last component. An MLflow 3 logged model is stored as
    `.../models/m-<id>/artifacts`: its leaf is the name it was logged under, as Azure shows
    the artifact folder (`model/`) of a model registered from a job."""
    if m := _LOGGED_MODEL.search(location):
        try:
            return str(mlflow_client(ws).get_logged_model(m["id"]).name) or "model"
        except Exception:
            return "model"
    leaf = location.rstrip("/").rsplit("/", 1)[-1]
    if not leaf or leaf in (".", "..") or ":" in leaf:
        return "model"
    return leaf


def registered_model_version(ws: Workspace, ref: str) -> tuple[str, str]:
    """(name, Azure version) for `azureml:name:version`, `azureml:name@latest`,
    `models:/name/v`, `models:/name@alias`. Versions are read straight from the store where
    it can be, so resolving a model does not import MLflow; aliases always ask MLflow."""
    version: str | None
    if ref.startswith("models:/"):
        rest = ref.removeprefix("models:/")
        if "@" in rest:
            name, alias = rest.split("@", 1)
            number = mlflow_client(ws).get_model_version_by_alias(name, alias).version
            return name, azure_version_of(ws, name, number)
        name, _, version = rest.partition("/")
        ref = f"azureml:{name}:{version}" if version else f"azureml:{name}@latest"
    parsed = parse_ref(ref)
    if parsed is None:
        raise InvalidInput(f"'{ref}' is not a model reference")
    name, version, label = parsed
    versions = version_map(ws, name)
    if not versions:
        raise NotFound(f"model '{name}' is not registered in this workspace")
    if version:
        if version not in versions:
            raise NotFound(
                f"model '{name}' has no version '{version}' (versions: {', '.join(versions)})"
            )
        return name, version
    if label not in (None, "latest"):
        try:
            number = mlflow_client(ws).get_model_version_by_alias(name, label).version
        except Exception:
            raise NotFound(f"model '{name}' has no label (alias) '{label}'") from None
        return name, azure_version_of(ws, name, number)
    return name, latest(versions)


def show_model(ws: Workspace, ref: str) -> dict[str, Any]:
    """`az ml model show`: the version `ref` names, in az's shape."""
    name, version = registered_model_version(ws, ref)
    number = mlflow_version(ws, name, version)
    return model_record(mlflow_client(ws).get_model_version(name, str(number)))


def latest_version(ws: Workspace, name: str) -> str | None:
    versions = version_map(ws, name)
    return latest(versions) if versions else None


def list_versions(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """`az ml model list --name`: every version, the most recently created first."""
    found = mlflow_client(ws).search_model_versions(f"name='{name}'")
    return [model_record(mv) for mv in sorted(found, key=lambda mv: -int(mv.version))]


def _iso(epoch_ms: Any) -> Any:
    """MLflow's epoch milliseconds as ISO 8601 in UTC, the form of job records' times."""
    if not isinstance(epoch_ms, int | float):
        return epoch_ms
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def model_record(mv: Any) -> dict[str, Any]:
    """An MLflow model version in the `az ml model show` shape."""
    tags = dict(mv.tags or {})
    version = azure_version(mv.version, tags.pop(VERSION_TAG, None))
    # A registry's shared model keeps its lineage in tags under this prefix (registries.share)
    props = {k[17:]: tags.pop(k) for k in list(tags) if k.startswith("azureml.property.")}
    if mv.run_id:
        props["mlflow.run_id"] = mv.run_id
    job_name = tags.pop("azureml.job_name", None)
    return {
        "name": mv.name,
        "version": version,
        "type": tags.get("azureml.model_type", "mlflow_model"),
        "path": mv.source,
        "description": mv.description or None,
        "tags": tags,
        "properties": props,
        "creation_context": {"created_at": _iso(mv.creation_timestamp)},
        "aliases": list(getattr(mv, "aliases", []) or []),
        **({"job_name": job_name} if job_name else {}),
    }
