"""Batch endpoints: their records in the workspace store, and the lookup of a deployment.

A batch endpoint has no server: it is a record (name, auth mode, default deployment) that
`batch-endpoint invoke` reads. Finding one of its deployments lives here too, as the endpoint
is the deployments' parent: the deployment verbs (batch_deployment) and invocations
(batch_invoke) both build on this module, never the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal.endpoints.verbs import deployment
from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace, public, public_job

EP, DEP = "batch-endpoint", "batch-deployment"


def get_endpoint(ws: Workspace, name: str) -> dict[str, Any]:
    return ws.store.require(EP, name, f"batch endpoint '{name}' does not exist")


def create_or_update_endpoint(
    ws: Workspace,
    file: Path | None,
    name: str | None,
    overrides: list[dict[str, Any]],
    *,
    creating: bool,
) -> dict[str, Any]:
    """`az ml batch-endpoint create|update`: create overwrites settings, keeps deployments."""
    spec: dict[str, Any] = {}
    if file is not None:
        spec, name = deployment.load_endpoint(EP, file, name, overrides)
    if not name:
        raise InvalidInput("the endpoint needs a name: --name or `name:` in the YAML")
    existing = ws.store.get(EP, name)
    if existing is None and not creating:
        raise NotFound(f"batch endpoint '{name}' does not exist")
    if file is None and overrides:
        spec = deployment.apply_sets(dict(existing or {}), overrides)
    rec = dict(existing or {})
    rec.update({k: v for k, v in spec.items() if v is not None})
    defaults = dict(rec.get("defaults") or {})
    defaults.setdefault("deployment_name", None)
    if spec.get("defaults", {}).get("deployment_name"):
        deployment_record(ws, name, spec["defaults"]["deployment_name"])
    rec.update(
        name=name,
        auth_mode=rec.get("auth_mode") or "aad_token",
        defaults=defaults,
        location="local",
        id=ws.arm_id(f"batchEndpoints/{name}"),
        scoring_uri=f"amlocal://batchEndpoints/{name}/jobs",
        openapi_uri=f"amlocal://batchEndpoints/{name}/swagger.json",
        provisioning_state="Succeeded",
    )
    rec.setdefault("tags", {})
    rec.setdefault("properties", {})
    ws.store.put(EP, name, rec)
    return public(rec)


def list_endpoints(ws: Workspace) -> list[dict[str, Any]]:
    return [public(r) for r in ws.store.list(EP)]


def delete_endpoint(ws: Workspace, name: str) -> None:
    get_endpoint(ws, name)
    for d in ws.store.list(DEP, parent=name):
        ws.store.delete(DEP, f"{name}:{d['name']}")
    ws.store.delete(EP, name)


def list_jobs(ws: Workspace, name: str, deployment: str | None = None) -> list[dict[str, Any]]:
    """An endpoint's (or one deployment's) invocation jobs, newest first."""
    get_endpoint(ws, name)
    if deployment is not None:
        deployment_record(ws, name, deployment)
    jobs = [
        r
        for r in ws.store.list("job")
        if r.get("_batch_endpoint") == name and deployment in (None, r.get("_batch_deployment"))
    ]
    jobs.reverse()  # newest first, as az ml lists them
    return [public_job(r) for r in jobs]


def deployment_record(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    return ws.store.require(
        DEP,
        f"{endpoint}:{name}",
        f"deployment '{name}' does not exist on batch endpoint '{endpoint}'",
    )
