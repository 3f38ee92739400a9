"""Data, environments, components and models in the local workspace.

Data, environments and components live in the workspace store; local files behind a data
asset or a component's code are copied into the workspace at `create`, as Azure uploads them,
so an asset version never changes under a job. Models live in the MLflow model registry.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput, NotFound
from amlocal.hashing import text_digest, tree_digest
from amlocal.workspace import Workspace, public  # noqa: F401 (public: re-exported)

_REF = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@]+)|@(?P<label>[\w-]+))?$")
_DATASTORE = re.compile(r"^azureml://datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$")
_JOB_OUTPUT = re.compile(
    r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<out>[^/]+)(?:/paths/(?P<p>.*))?$"
)


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
    return max(versions, key=_version_key)


def _version_key(v: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", v))


def get(ws: Workspace, kind: str, ref: str) -> dict[str, Any]:
    """Resolve `azureml:name:version`, `azureml:name@latest` or `name` to a stored asset record."""
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


def _register(
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


def _asset_id(ws: Workspace, kind: str, name: str, version: str) -> str:
    plural = {"data": "data", "environment": "environments", "component": "components"}[kind]
    return "azureml:" + ws.arm_id(f"{plural}/{name}/versions/{version}")


# -- data ---------------------------------------------------------------------------------
def create_data(ws: Workspace, path: Path, overrides: list[dict] | None = None) -> dict[str, Any]:
    from amlocal import loader

    info = loader.validated(
        "data",
        path,
        overrides,
        lambda e: {"dict": e._to_dict(), "name": e.name, "version": e.version, "path": str(e.path)},
    )
    d, name = info["dict"], info["name"]
    version = str(info["version"]) if info["version"] else next_version(ws, "data", name)
    source = info["path"]
    local = resolve_path(ws, source, path.parent)
    if local is not None and not local.exists():
        raise InvalidInput(f"{path}: path: {local} does not exist")
    uri = source
    if local is not None and not source.startswith("azureml://"):
        digest = tree_digest(local, store=ws.store)
        # Azure uploads local files to LocalUpload/<hash>/ on the default datastore.
        dest = ws.datastore_dir() / "LocalUpload" / digest[:32] / local.name
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if local.is_dir() else shutil.copy2)(local, tmp)
            tmp.rename(dest)
        uri = (
            f"azureml://datastores/workspaceblobstore/paths/LocalUpload/{digest[:32]}/{local.name}"
        )
        identity = digest
    else:
        identity = text_digest(source)
    d.update(name=name, version=version, path=uri, id=_asset_id(ws, "data", name, version))
    return _register(ws, "data", d, identity, path)


# -- environments -------------------------------------------------------------------------
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
    from amlocal.jobs.plan import source_files

    info = loader.validated(
        "environment",
        path,
        overrides,
        lambda e: {"dict": environment_record(e), "name": e.name, "version": e.version},
        files=source_files(path),
    )
    d, name = info["dict"], info["name"]
    identity = text_digest(
        _stable(d.get("image")), _stable(d.get("conda_file")), _stable(d.get("build"))
    )
    version = str(info["version"]) if info["version"] else None
    if version is None:
        # Azure auto-increments environment versions; an identical definition is not re-created.
        for existing in reversed(ws.store.list("environment", name=name)):
            if existing.get("_identity") == identity:
                return public(existing)
        version = next_version(ws, "environment", name)
    d.update(name=name, version=version, id=_asset_id(ws, "environment", name, version))
    return _register(ws, "environment", d, identity, path)


def _stable(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True, default=str)


# -- components ---------------------------------------------------------------------------
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
    identity = text_digest(_stable({k: v for k, v in d.items() if k != "code"}))
    if code and not str(code).startswith(("azureml:", "http")):
        code_path = Path(code) if Path(code).is_absolute() else (path.parent / code)
        digest, dest = code_snapshot(ws, code_path.resolve(), includes)
        d["code"] = str(dest)
        identity = text_digest(identity, digest)
    name = d["name"]
    version = str(info["version"]) if info["version"] else next_version(ws, "component", name)
    d.update(version=version, id=_asset_id(ws, "component", name, version))
    return _register(ws, "component", d, identity, path)


def code_snapshot(ws: Workspace, code: Path, includes: Sequence[str] = ()) -> tuple[str, Path]:
    """Copy code (and its additional includes) into the workspace, as Azure uploads it at
    create, so later edits to the working tree never change a component or a deployment:
    (the snapshot's digest, its folder). Made once per content; concurrent creators each
    build their own partial folder and the first to finish wins."""
    from amlocal.snapshot import materialize, snapshot_digest

    digest = snapshot_digest(code, ws.store, includes)
    dest = ws.home / "snapshots" / digest[:32]
    if not dest.exists():
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        materialize(code, tmp, includes)
        try:
            tmp.rename(dest)
        except OSError:  # another process made the same snapshot first
            shutil.rmtree(tmp, ignore_errors=True)
    return digest, dest


# -- paths --------------------------------------------------------------------------------
def resolve_path(ws: Workspace, uri: str, base: Path) -> Path | None:
    """A data URI as a local path; None for URIs that only exist in Azure (https, wasbs...)."""
    uri = str(uri)
    if m := _DATASTORE.match(uri):
        return ws.datastore_dir(m["ds"]) / m["path"]
    if m := _JOB_OUTPUT.match(uri):
        job = ws.store.get("job", m["job"])
        if job is None:
            raise NotFound(f"job '{m['job']}' in {uri} does not exist")
        out = (job.get("outputs") or {}).get(m["out"]) or {}
        if not out.get("local_path"):
            raise NotFound(f"job '{m['job']}' has no output '{m['out']}'")
        p = Path(out["local_path"])
        return p / m["p"] if m["p"] else p
    if uri.startswith("azureml:"):
        rec = get(ws, "data", uri)
        return resolve_path(ws, rec["path"], base)
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri) and not uri.startswith("file://"):
        return None
    p = Path(uri.removeprefix("file://"))
    return (p if p.is_absolute() else base / p).resolve()


# -- models (MLflow registry) ------------------------------------------------------------
# Azure mounts a registered model at /var/azureml-app/azureml-models/<name>/<version>/ and
# keeps the registered path's last component below it (a folder `model/` is found at
# $AZUREML_MODEL_DIR/model/..., a file `x.pkl` at $AZUREML_MODEL_DIR/x.pkl).
MODELS_DIR = "azureml-models"
MAX_VERSION_GAP = 1000  # explicit model versions above the next one are filled with placeholders


def mlflow_client(ws: Workspace) -> Any:
    from amlocal.tracking import client

    return client(ws)


def model_dir(ws: Workspace, ref: str, base: Path | None = None) -> Path:
    """A model as a job input sees it: the registered path itself (`azureml:name:version`,
    `@label`, `models:/...`), or a local path."""
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

    location = tracking.model_location(ws, name, version)
    if location is None:
        mv = mlflow_client(ws).get_model_version(name, version)
        location = getattr(mv, "storage_location", None) or mv.source
    leaf = _model_leaf(ws, str(location))
    tmp = dest.with_name(f"{version}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    local = _local_path(str(location))
    if local is not None and local.is_file():
        shutil.copy2(local, tmp / leaf)
    else:
        tracking.download_model(ws, name, version, str(tmp / leaf))
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
    """(name, version) for `azureml:name:version`, `azureml:name@latest`, `models:/name/v`,
    `models:/name@alias`. Versions are read straight from the store where it can be, so
    resolving a model does not import MLflow; aliases always ask MLflow."""
    from amlocal import tracking

    if ref.startswith("models:/"):
        rest = ref.removeprefix("models:/")
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return name, str(mlflow_client(ws).get_model_version_by_alias(name, alias).version)
        name, _, version = rest.partition("/")
        ref = f"azureml:{name}:{version}" if version else f"azureml:{name}@latest"
    parsed = parse_ref(ref)
    if parsed is None:
        raise InvalidInput(f"'{ref}' is not a model reference")
    name, version, label = parsed
    versions = tracking.model_versions(ws, name)
    if versions is None:
        versions = _mlflow_versions(ws, name)
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
            return name, str(mlflow_client(ws).get_model_version_by_alias(name, label).version)
        except Exception:
            raise NotFound(f"model '{name}' has no label (alias) '{label}'") from None
    return name, str(max(int(v) for v in versions))


def _mlflow_versions(ws: Workspace, name: str) -> list[str]:
    try:
        found = mlflow_client(ws).search_model_versions(f"name='{name}'")
    except Exception:
        return []
    return [str(mv.version) for mv in found]


def model_record(mv: Any) -> dict[str, Any]:
    """An MLflow model version in the `az ml model show` shape."""
    tags = dict(mv.tags or {})
    return {
        "name": mv.name,
        "version": str(mv.version),
        "type": tags.get("azureml.model_type", "mlflow_model"),
        "path": mv.source,
        "description": mv.description or None,
        "tags": tags,
        "properties": {"mlflow.run_id": mv.run_id} if mv.run_id else {},
        "creation_context": {"created_at": mv.creation_timestamp},
        "aliases": list(getattr(mv, "aliases", []) or []),
    }


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
    src = resolve_path(ws, str(entity.path), base) if entity.path else None
    if src is None or not src.exists():
        raise InvalidInput(f"{where}: model path: {entity.path} does not exist")
    name = str(entity.name)
    version = str(entity.version) if entity.version not in (None, "") else None
    if version is not None and not version.isdigit():
        raise InvalidInput(
            f"{where}: model version: '{version}': the local model registry (MLflow) numbers "
            f"versions 1, 2, 3...; use an integer version"
        )
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
