"""`model share`, `environment share`, `data share`: copy a workspace's asset version into a
registry (`--share-with-name/--share-with-version` rename it there), as Azure does.

A shared model keeps its lineage in its properties: the workspace it came from, the asset id
there, and the MLflow run and job that produced it (the run's `azureml.jobName` and its
pipeline's), so prod can trace a deployed model back to its training in dev. Its tags (the
champion's test metrics) come with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.registries import Registry
from amlocal.registries.rules import _spec, create, refuse_existing, shown
from amlocal.workspace import Workspace

# MLflow version tags a share does not copy: the workspace registry's own bookkeeping.
_PRIVATE_TAGS = (
    "azureml.content_digest",
    "azureml.placeholder",
    "azureml.job_name",
    "azureml.version",
)
PROPERTY_TAG = "azureml.property."  # a model version tag shown under `properties`


def share(
    ws: Workspace,
    kind: str,
    name: str,
    version: str,
    reg: Registry,
    new_name: str | None,
    new_version: str | None,
) -> dict[str, Any]:
    target_name, target_version = new_name or name, new_version or version
    where = f"{kind} share --name {name} --version {version}"
    refuse_existing(reg, kind, target_name, target_version, where)
    if kind == "model":
        return _share_model(ws, name, version, reg, target_name, target_version)
    from amlocal import assets

    rec = assets.get(ws, kind, f"azureml:{name}:{version}")
    doc = _asset_doc(ws, kind, rec)
    doc.update(name=target_name, version=target_version)
    with _spec(doc, kind) as spec:
        out = create(reg, kind, spec, [])
    return out


def _asset_doc(ws: Workspace, kind: str, rec: dict[str, Any]) -> dict[str, Any]:
    """The YAML that creates the same asset in the registry (files as local paths)."""
    schema = f"https://azuremlschemas.azureedge.net/latest/{kind}.schema.json"
    doc: dict[str, Any] = {"$schema": schema}
    for key in ("description", "tags"):
        if rec.get(key):
            doc[key] = rec[key]
    if kind == "environment":
        for key in ("image", "conda_file", "inference_config"):
            if rec.get(key):
                doc[key] = rec[key]
        if rec.get("build"):
            build = dict(rec["build"])
            build["path"] = str(Path(str(build.get("path"))).resolve())
            doc["build"] = build
    else:  # data: the files, copied into the registry's storage
        from amlocal.assets.data import resolve_path

        local = resolve_path(ws, rec["path"], Path.cwd())
        if local is None or not local.exists():
            raise InvalidInput(
                f"data {rec['name']}:{rec['version']}: {rec['path']} is not available offline"
            )
        doc["type"] = rec.get("type") or "uri_folder"
        doc["path"] = str(local)
    return doc


def lineage(ws: Workspace, mv: Any, version: str) -> dict[str, str]:
    """Where a workspace's model version (Azure's `version`, on MLflow's `mv`) came from:
    workspace, asset, run, job, pipeline."""
    from amlocal.assets.model import mlflow_client

    props = {
        "azureml.sharedFrom.workspace": ws.name,
        "azureml.sharedFrom.workspaceId": ws.arm_id(),
        "azureml.sharedFrom.assetId": "azureml:"
        + ws.arm_id(f"models/{mv.name}/versions/{version}"),
    }
    run_id = mv.run_id
    job_name = (mv.tags or {}).get("azureml.job_name")
    if job_name:  # registered from a job's output: the job and its MLflow run
        props["azureml.sharedFrom.jobName"] = job_name
        job = ws.store.get("job", job_name) or {}
        run_id = run_id or (job.get("properties") or {}).get("mlflow.runId")
    if run_id:
        props["mlflow.run_id"] = str(run_id)
        try:
            run = mlflow_client(ws).get_run(run_id)
        except Exception:
            return props
        tags = run.data.tags or {}
        for key, value in (run.data.metrics or {}).items():  # the run's metrics, as logged
            props[f"azureml.sharedFrom.metrics.{key}"] = f"{value:.6g}"
        if tags.get("azureml.jobName"):
            props["azureml.sharedFrom.jobName"] = tags["azureml.jobName"]
        parent = tags.get("mlflow.parentRunId")
        if parent:
            try:
                ptags = mlflow_client(ws).get_run(parent).data.tags or {}
            except Exception:
                ptags = {}
            if ptags.get("azureml.jobName"):
                props["azureml.sharedFrom.pipelineJobName"] = ptags["azureml.jobName"]
        if tags.get("mlflow.source.git.commit"):
            props["azureml.sharedFrom.gitCommit"] = tags["mlflow.source.git.commit"]
    return props


def _share_model(
    ws: Workspace, name: str, version: str, reg: Registry, new_name: str, new_version: str
) -> dict[str, Any]:
    from amlocal.assets.model import (
        mlflow_client,
        model_record,
        registered_model_path,
        registered_model_version,
    )
    from amlocal.assets.model_versions import mlflow_version

    name, version = registered_model_version(ws, f"azureml:{name}:{version}")
    mv = mlflow_client(ws).get_model_version(name, str(mlflow_version(ws, name, version)))
    files = registered_model_path(ws, name, version)
    tags = {k: v for k, v in (mv.tags or {}).items() if k not in _PRIVATE_TAGS}
    doc: dict[str, Any] = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/model.schema.json",
        "name": new_name,
        "version": new_version,
        "type": tags.pop("azureml.model_type", "mlflow_model"),
        "path": str(files),
    }
    if mv.description:
        doc["description"] = mv.description
    if tags:
        doc["tags"] = tags
    with _spec(doc, "model") as spec:
        create(reg, "model", spec, [])
    c = mlflow_client(reg)
    number = str(mlflow_version(reg, new_name, new_version))  # the registry's own numbering
    for key, value in lineage(ws, mv, version).items():
        c.set_model_version_tag(new_name, number, PROPERTY_TAG + key, value)
    return shown(reg, "model", model_record(c.get_model_version(new_name, number)))
