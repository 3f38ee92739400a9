"""Online endpoints: `online-endpoint create|update|show|delete|invoke|get-credentials|
regenerate-keys`.

The CLI writes what `az ml` would send to Azure into the workspace store; the endpoint's
daemon serves it (online_daemon starts it and asks it to reload). `invoke`, `show` and the key
verbs run in latency-sensitive paths: this module imports neither azure-ai-ml nor MLflow at
import time.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.endpoints import keys as keyfile
from amlocal.endpoints import paths
from amlocal.endpoints.verbs import deployment
from amlocal.endpoints.verbs.online_daemon import control, daemon_pid, ensure_daemon, stop_daemon
from amlocal.endpoints.verbs.online_records import DEP, EP, deployments, get_endpoint
from amlocal.endpoints.verbs.online_traffic import check_traffic
from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace, public

if TYPE_CHECKING:
    from amlocal.loader import Overrides


def _endpoint_uris(port: int) -> dict[str, str]:
    return {
        "scoring_uri": f"http://127.0.0.1:{port}/score",
        "openapi_uri": f"http://127.0.0.1:{port}/swagger.json",
    }


def create_or_update_endpoint(
    ws: Workspace,
    file: Path | None,
    name: str | None,
    overrides: Overrides | None = None,
    traffic: dict[str, int] | None = None,
    mirror: dict[str, int] | None = None,
    creating: bool = True,
) -> dict[str, Any]:
    existing = ws.store.get(EP, name) if name else None
    spec: dict[str, Any] = {}
    if file is not None:
        spec, name = deployment.load_endpoint(EP, file, name, overrides)
        existing = ws.store.get(EP, name)
    if not name:
        raise InvalidInput("the endpoint needs a name: --name or `name:` in the YAML")
    if existing is None and not creating:
        raise NotFound(f"online endpoint '{name}' does not exist")
    if file is None and overrides:  # `update -n x --set traffic.blue=100 tags.k=v`
        changed = deployment.apply_sets(
            {k: v for k, v in (existing or {}).items() if not k.startswith("_")}, overrides
        )
        spec = {k: v for k, v in changed.items() if k not in ("traffic", "mirror_traffic")}
        if "traffic" in changed and traffic is None:
            traffic = {str(k): int(v) for k, v in (changed["traffic"] or {}).items()}
        if "mirror_traffic" in changed and mirror is None:
            mirror = {str(k): int(v) for k, v in (changed["mirror_traffic"] or {}).items()}
    if spec.get("auth_mode", "key") not in ("key", "aml_token"):
        raise InvalidInput(f"auth_mode {spec['auth_mode']!r}: amlocal serves key and aml_token")
    rec = dict(existing or {})
    rec.update({k: v for k, v in spec.items() if v not in (None, {}) or k not in rec})
    rec.setdefault("traffic", {})
    rec.setdefault("mirror_traffic", {})
    if traffic is not None:
        rec["traffic"] = {**rec["traffic"], **traffic}
    if mirror is not None:
        rec["mirror_traffic"] = mirror
    check_traffic(ws, name, rec["traffic"], rec["mirror_traffic"])
    # `--mirror-traffic green=0` ends the mirror: Azure shows no entry, not a 0 % one
    rec["mirror_traffic"] = {k: v for k, v in rec["mirror_traffic"].items() if int(v)}
    if existing is None:
        from amlocal.ports import free_port

        keyfile.create(paths.keys_file(ws.home, name))
        rec["_port"] = free_port()
    rec.update(
        name=name,
        auth_mode=rec.get("auth_mode", "key"),
        kind="K8S" if rec.get("compute") else "Managed",  # kubernetesOnlineEndpoint
        location="local",
        id=ws.arm_id(f"onlineEndpoints/{name}"),
        identity={"type": "system_assigned"},
        public_network_access="enabled",
        provisioning_state="Succeeded",
        **_endpoint_uris(rec["_port"]),
    )
    ws.store.put(EP, name, rec)
    ensure_daemon(ws, name)
    if existing is not None:
        control(ws, name, "reload")
    return public(rec)


def show_endpoint(ws: Workspace, name: str) -> dict[str, Any]:
    rec = get_endpoint(ws, name)
    ensure_daemon(ws, name)  # restarts an endpoint whose processes died (reboot, kill)
    return public(rec)


def delete_endpoint(ws: Workspace, name: str) -> None:
    get_endpoint(ws, name)
    stop_daemon(ws, name)
    for d in deployments(ws, name):
        ws.store.delete(DEP, f"{name}:{d['name']}")
    ws.store.delete(EP, name)
    import shutil

    shutil.rmtree(paths.endpoint_dir(ws.home, name), ignore_errors=True)


def credentials(ws: Workspace, name: str) -> dict[str, str]:
    get_endpoint(ws, name)
    k = keyfile.read(paths.keys_file(ws.home, name))
    return {"primaryKey": k["primaryKey"], "secondaryKey": k["secondaryKey"]}


def regenerate_keys(ws: Workspace, name: str, key_type: str) -> None:
    get_endpoint(ws, name)
    keyfile.regenerate(paths.keys_file(ws.home, name), key_type)
    ensure_daemon(ws, name)
    control(ws, name, "reload")


def invoke(
    ws: Workspace, name: str, body: bytes, deployment: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST the request through the front door, with the primary key, as az ml invoke does."""
    rec = get_endpoint(ws, name)
    if daemon_pid(ws, name, rec["_port"]) is None:
        ensure_daemon(ws, name)
    key = keyfile.read(paths.keys_file(ws.home, name))["primaryKey"]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    conn = http.client.HTTPConnection("127.0.0.1", rec["_port"], timeout=300)
    try:
        conn.request("POST", "/score", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def set_traffic(
    ws: Workspace, name: str, traffic: dict[str, int] | None, mirror: dict[str, int] | None
) -> dict[str, Any]:
    return create_or_update_endpoint(ws, None, name, None, traffic, mirror, creating=False)
