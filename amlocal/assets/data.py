"""Data assets: `data create` (local files copied into the default datastore, as Azure
uploads them) and a data URI as a local path (datastore, job output, asset, file)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from amlocal.assets import asset_id, get, next_version, register
from amlocal.errors import InvalidInput, NotFound
from amlocal.hashing import text_digest, tree_digest
from amlocal.workspace import Workspace

_DATASTORE = re.compile(r"^azureml://datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$")
_JOB_OUTPUT = re.compile(
    r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<out>[^/]+)(?:/paths/(?P<p>.*))?$"
)


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
    d.update(name=name, version=version, path=uri, id=asset_id(ws, "data", name, version))
    return register(ws, "data", d, identity, path)


def inside(root: Path, rel: str, uri: str) -> Path:
    """`root/rel`, refused unless it stays inside `root` once resolved (`..`, an absolute
    part and symbolic links included): a datastore path or a job output's sub-path never
    leaves its folder, as on Azure, where it names a blob in that datastore."""
    base = root.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise InvalidInput(f"{uri}: the path leaves its datastore or output folder; refused")
    return path


def output_path(ws: Workspace, uri: str, where: str) -> Path:
    """The local folder of an output `path`. Azure ML writes outputs to datastores only, so
    anything else (a local, absolute or `file://` path, which would write on the submitting
    machine) is refused with the key named, as is a datastore path that leaves its datastore."""
    m = _DATASTORE.match(str(uri))
    if m is None:
        raise InvalidInput(
            f"{where}: path {uri!r} is not a datastore path; outputs are written to a "
            f"datastore (azureml://datastores/<datastore>/paths/<path>), never to local folders"
        )
    try:
        return inside(ws.datastore_dir(m["ds"]), m["path"], uri)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def resolve_path(ws: Workspace, uri: str, base: Path) -> Path | None:
    """A data URI as a local path; None for URIs that only exist in Azure (https, wasbs...)."""
    uri = str(uri)
    if m := _DATASTORE.match(uri):
        return inside(ws.datastore_dir(m["ds"]), m["path"], uri)
    if m := _JOB_OUTPUT.match(uri):
        job = ws.store.get("job", m["job"])
        if job is None:
            raise NotFound(f"job '{m['job']}' in {uri} does not exist")
        out = (job.get("outputs") or {}).get(m["out"]) or {}
        if not out.get("local_path"):
            raise NotFound(f"job '{m['job']}' has no output '{m['out']}'")
        p = Path(out["local_path"])
        if not m["p"]:
            return p
        inside(p, m["p"], uri)  # a sub-path never climbs out of the output's folder
        if m["out"] == "artifacts":  # or a model the job logged (MLflow 3)
            from amlocal.assets.logged_models import resolve_in_run

            return resolve_in_run(ws, m["job"], p, m["p"])
        return inside(p, m["p"], uri)
    if uri.startswith("runs:/"):
        from amlocal.assets.logged_models import resolve_runs_uri

        return resolve_runs_uri(ws, uri)
    if uri.startswith("azureml://registries/"):
        from amlocal.registries import refs

        parsed = refs.parse(uri)
        if parsed is not None and refs.is_local(uri):
            reg = refs.registry_of(parsed.registry, ws)
            if parsed.kind == "model":  # a model input (type: mlflow_model/custom_model)
                from amlocal.assets.model import model_dir

                return model_dir(reg, parsed.local, base)
            return resolve_path(reg, get(reg, "data", parsed.local)["path"], base)
    if uri.startswith("azureml:"):
        rec = get(ws, "data", uri)
        return resolve_path(ws, rec["path"], base)
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri) and not uri.startswith("file://"):
        return None
    p = Path(uri.removeprefix("file://"))
    return (p if p.is_absolute() else base / p).resolve()
