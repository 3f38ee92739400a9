"""Online endpoint and deployment lifecycle: records in the store, a daemon per endpoint.

The CLI writes what `az ml` would send to Azure into the workspace store; the endpoint's
daemon (daemon.py) serves it. Creating or updating a deployment asks the daemon to reload
and waits, as `az ml online-deployment create` waits, until the deployment's instances pass
their readiness probe (Succeeded) or fail (Failed, with the instance log tail).

Only `invoke`, `show` and the key verbs run in latency-sensitive paths: this module imports
neither azure-ai-ml nor MLflow at import time.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from amlocal import daemons
from amlocal.endpoints import deployment, liveness, paths
from amlocal.endpoints import keys as keyfile
from amlocal.errors import AmlocalError, InvalidInput, NotFound
from amlocal.workspace import Workspace, public

EP, DEP = "online-endpoint", "online-deployment"
SERVER_PACKAGE = "azureml-inference-server-http"
DEFAULT_TIMEOUT_MS = 5000  # Azure's request_timeout_ms default
MLFLOW_DRIVER = Path(__file__).parent / "mlflow_scoring" / "mlflow_score.py"
SCHEMA_BASE = "https://azuremlschemas.azureedge.net/latest/"
DEPLOYMENT_SCHEMAS = {
    "managed": SCHEMA_BASE + "managedOnlineDeployment.schema.json",
    "kubernetes": SCHEMA_BASE + "kubernetesOnlineDeployment.schema.json",
}


# -- records ---------------------------------------------------------------------------------
def get_endpoint(ws: Workspace, name: str) -> dict[str, Any]:
    rec = ws.store.get(EP, name)
    if rec is None:
        raise NotFound(f"online endpoint '{name}' does not exist")
    return rec


def get_deployment(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    get_endpoint(ws, endpoint)
    rec = ws.store.get(DEP, f"{endpoint}:{name}")
    if rec is None:
        raise NotFound(f"deployment '{name}' does not exist on online endpoint '{endpoint}'")
    return rec


def deployments(ws: Workspace, endpoint: str) -> list[dict[str, Any]]:
    return ws.store.list(DEP, parent=endpoint)


# -- the daemon ------------------------------------------------------------------------------
def _daemon_pid(ws: Workspace, name: str, port: int) -> int | None:
    """The running daemon's pid, if there is one for this endpoint and port (found by its
    file, or by its port when the file is lost)."""
    return liveness.daemon_pid(ws.home, name, port)


def control(ws: Workspace, name: str, verb: str, timeout: float = 600.0) -> dict[str, Any]:
    rec = get_endpoint(ws, name)
    token = keyfile.read(paths.keys_file(ws.home, name))["control"]
    conn = http.client.HTTPConnection("127.0.0.1", rec["_port"], timeout=timeout)
    try:
        conn.request("POST", f"/.amlocal/control/{verb}", headers={"x-amlocal-control": token})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise AmlocalError(f"endpoint '{name}' daemon: {resp.status} {body[:500]!r}")
    return json.loads(body)


def ensure_daemon(ws: Workspace, name: str, _retry: bool = True) -> dict[str, Any]:
    """Start the endpoint's daemon if it is not running (after a reboot, a kill, ...) and
    wait until its deployments are up; returns the daemon's status."""
    rec = get_endpoint(ws, name)
    port = rec["_port"]
    if _daemon_pid(ws, name, port) is None:
        log = paths.daemon_log(ws.home, name)
        paths.daemon_file(ws.home, name).unlink(missing_ok=True)
        daemons.start(liveness.DAEMON_MODULE, [str(ws.home), name, str(port)], ws.home, log)
        deadline = time.monotonic() + 30
        while _daemon_pid(ws, name, port) is None:
            if time.monotonic() > deadline:
                from amlocal.endpoints.instances import tail

                raise AmlocalError(f"endpoint '{name}' did not start:\n{tail(log)}")
            time.sleep(0.02)
    for _ in range(200):
        try:
            return control(ws, name, "status")
        except (ConnectionRefusedError, ConnectionResetError):
            if _daemon_pid(ws, name, port) is None and _retry:  # it was stopping: start anew
                return ensure_daemon(ws, name, _retry=False)
            time.sleep(0.02)
    try:
        return control(ws, name, "status")
    except (ConnectionRefusedError, ConnectionResetError):
        raise AmlocalError(
            f"endpoint '{name}' is not answering on port {port} (its front door may be "
            f"stopping); run the command again"
        ) from None


def stop_daemon(ws: Workspace, name: str) -> None:
    """Stop the daemon and everything it started; kill leftovers if it does not answer."""
    rec = ws.store.get(EP, name)
    if rec is None:
        return
    pid = _daemon_pid(ws, name, rec["_port"])
    if pid is None:
        from amlocal.endpoints.daemon import reap_stale

        reap_stale(paths.endpoint_dir(ws.home, name))
        return
    try:
        control(ws, name, "shutdown", timeout=10)
    except (OSError, AmlocalError):
        pass
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.02)
    if _daemon_pid(ws, name, rec["_port"]) is not None:
        from amlocal import procs

        try:
            procs.stop_group(os.getpgid(pid))
        except ProcessLookupError:
            pass
    from amlocal.endpoints.daemon import reap_stale

    reap_stale(paths.endpoint_dir(ws.home, name))


# -- endpoints -------------------------------------------------------------------------------
def parse_traffic(text: str | None) -> dict[str, int] | None:
    """`"blue=90 green=10"` (az ml's --traffic syntax; commas also accepted)."""
    if text is None:
        return None
    out: dict[str, int] = {}
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        name, sep, pct = part.partition("=")
        if not sep or not pct.strip().isdigit():
            raise InvalidInput(f"traffic must look like 'blue=90 green=10', got {part!r}")
        out[name.strip()] = int(pct)
    return out


def check_traffic(
    ws: Workspace, name: str, traffic: dict[str, int], mirror: dict[str, int]
) -> None:
    """Azure's rules: known deployments, 0..100, live traffic totals 0 or 100, mirror <= 50 %
    to one deployment that takes no live traffic."""
    known = {d["name"] for d in deployments(ws, name)}
    for kind, table in (("traffic", traffic), ("mirror_traffic", mirror)):
        for dep, pct in table.items():
            if dep not in known:
                raise InvalidInput(f"{kind}: deployment '{dep}' does not exist on '{name}'")
            if not 0 <= int(pct) <= 100:
                raise InvalidInput(f"{kind}: {dep}={pct} is not a percentage")
    total = sum(int(v) for v in traffic.values())
    if total not in (0, 100):
        raise InvalidInput(f"traffic must add up to 0 or 100, got {total}: {traffic}")
    live_mirror = {k: v for k, v in mirror.items() if v}
    if len(live_mirror) > 1:
        raise InvalidInput("mirror_traffic can target only one deployment")
    for dep, pct in live_mirror.items():
        if pct > 50:
            raise InvalidInput(f"mirror_traffic: {dep}={pct} exceeds the 50% maximum")
        if traffic.get(dep, 0) > 0:
            raise InvalidInput(f"deployment '{dep}' cannot take both live and mirror traffic")


def _endpoint_uris(port: int) -> dict[str, str]:
    return {
        "scoring_uri": f"http://127.0.0.1:{port}/score",
        "openapi_uri": f"http://127.0.0.1:{port}/swagger.json",
    }


def create_or_update_endpoint(
    ws: Workspace,
    file: Path | None,
    name: str | None,
    overrides: list[dict] | None = None,
    traffic: dict[str, int] | None = None,
    mirror: dict[str, int] | None = None,
    creating: bool = True,
) -> dict[str, Any]:
    existing = ws.store.get(EP, name) if name else None
    spec: dict[str, Any] = {}
    if file is not None:
        from amlocal import loader

        entity = loader.load(EP, file, overrides)
        if name:
            entity.name = name
        spec = dict(entity._to_dict())
        name = entity.name
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
    if _daemon_pid(ws, name, rec["_port"]) is None:
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


# -- deployments -----------------------------------------------------------------------------
def _server_pin(env: dict[str, Any]) -> str | None:
    """The azureml-inference-server-http version an environment pins, if any."""
    conda = env.get("conda_file") or {}
    if isinstance(conda, str):
        import yaml

        conda = yaml.safe_load(conda) or {}
    for dep in conda.get("dependencies", []) or []:
        for pip_dep in dep.get("pip", []) if isinstance(dep, dict) else []:
            m = re.match(rf"^{SERVER_PACKAGE}\s*==\s*([\w.]+)", str(pip_dep).strip())
            if m:
                return m.group(1)
    return None


def _registered(ws: Workspace, ref: str) -> bool:
    """Whether a workspace environment answers `ref` (it wins over a curated name)."""
    from amlocal import assets

    parsed = assets.parse_ref(ref)
    return parsed is not None and bool(ws.store.versions("environment", parsed[0]))


def _environment(ws: Workspace, env: Any, where: str) -> dict[str, Any]:
    """The environment's record; checks it pins the azmlinfsrv version amlocal runs."""
    from importlib.metadata import version

    from amlocal import assets

    if env is None:
        return {}
    if isinstance(env, str) and not _registered(ws, env):
        curated = deployment.curated_environment(env, where)
        if curated is not None:
            deployment.warn_curated(curated)
            return curated
    if isinstance(env, str):
        record = assets.get(ws, "environment", env)
    else:
        record = assets.environment_record(env)
    pin = _server_pin(record)
    installed = version(SERVER_PACKAGE)
    if pin is not None and pin != installed:
        raise InvalidInput(
            f"environment {record.get('name')} pins {SERVER_PACKAGE}=={pin} but this venv runs "
            f"{installed}: align the pins (environments/*.conda.yml and pyproject.toml)"
        )
    return record


def _probe(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    names = ("initial_delay", "period", "timeout", "success_threshold", "failure_threshold")
    return {k: getattr(p, k) for k in names if getattr(p, k, None) is not None}


def build_deployment(
    ws: Workspace, file: Path, name: str | None, endpoint: str | None, overrides: list[dict]
) -> dict[str, Any]:
    """Load and resolve a deployment YAML into its record (what Azure would store)."""
    from amlocal import loader
    from amlocal.hashing import text_digest

    entity = loader.load(DEP, file, overrides)
    if name:
        entity.name = name
    if endpoint:
        entity.endpoint_name = endpoint
    if not entity.endpoint_name:
        raise InvalidInput(f"{file}: no endpoint: set `endpoint_name:` or pass --endpoint-name")
    get_endpoint(ws, entity.endpoint_name)
    base = file.parent.resolve()
    d = dict(entity._to_dict())
    model = deployment.resolve_model(ws, entity.model, base, str(file))
    env = _environment(ws, entity.environment, str(file))
    scoring = deployment.resolve_scoring(
        ws,
        entity.code_configuration,
        model,
        has_environment=entity.environment is not None,
        base=base,
        where=str(file),
        mlflow_driver=MLFLOW_DRIVER,
    )
    code_dir, entry = scoring.code_dir, scoring.code_dir / scoring.entry_script
    rs = entity.request_settings
    mcr = int(getattr(rs, "max_concurrent_requests_per_instance", None) or 1)
    runtime = {
        "python": sys.executable,
        "entry_script": str(entry),
        "code_dir": str(code_dir),
        "model_dir": str(model.model_dir),
        "environment_variables": {
            str(k): str(v) for k, v in (entity.environment_variables or {}).items()
        },
        "instance_count": int(entity.instance_count or 1),
        "workers": mcr,
        "max_concurrent": mcr,
        "request_timeout_ms": int(getattr(rs, "request_timeout_ms", None) or DEFAULT_TIMEOUT_MS),
        "liveness_probe": _probe(entity.liveness_probe),
        "readiness_probe": _probe(entity.readiness_probe),
    }
    if d.get("data_collector"):  # an agent beside each instance (amlocal.endpoints.collector)
        from amlocal.endpoints.collector import runtime_spec

        runtime["data_collector"] = runtime_spec(
            ws.home,
            entity.endpoint_name,
            entity.name,
            ws.arm_id(f"onlineEndpoints/{entity.endpoint_name}/deployments/{entity.name}"),
            d["data_collector"],
        )
    runtime["digest"] = text_digest(json.dumps(runtime, sort_keys=True), str(time.time()))
    d.update(
        name=entity.name,
        endpoint_name=entity.endpoint_name,
        model=model.ref,
        type=str(getattr(entity, "type", None) or "managed").lower(),
        id=ws.arm_id(f"onlineEndpoints/{entity.endpoint_name}/deployments/{entity.name}"),
        environment=d.get("environment")
        or (f"azureml:{env['name']}:{env['version']}" if env.get("name") else None),
    )
    d["_runtime"] = runtime
    return d


def create_or_update_deployment(
    ws: Workspace,
    file: Path,
    name: str | None,
    endpoint: str | None,
    overrides: list[dict],
    all_traffic: bool,
    creating: bool,
) -> dict[str, Any]:
    rec = build_deployment(ws, file, name, endpoint, overrides)
    ep, dep = rec["endpoint_name"], rec["name"]
    key = f"{ep}:{dep}"
    existing = ws.store.get(DEP, key)
    if existing is None and not creating:
        raise NotFound(f"deployment '{dep}' does not exist on online endpoint '{ep}'")
    rec["provisioning_state"] = "Updating" if existing else "Creating"
    ws.store.put(DEP, key, rec, parent=ep)
    ensure_daemon(ws, ep)
    status = control(ws, ep, "reload")
    st = status["deployments"].get(dep, {})
    ok = st.get("state") == "Succeeded"
    rec["provisioning_state"] = "Succeeded" if ok else "Failed"
    ws.store.update(DEP, key, lambda r: {**r, "provisioning_state": rec["provisioning_state"]})
    if not ok:
        raise AmlocalError(
            f"deployment '{dep}' on '{ep}' failed: the inference server did not become ready "
            f"(readiness probe on GET /).\n{st.get('error') or ''}".rstrip()
        )
    if all_traffic:
        set_traffic(ws, ep, {d["name"]: 0 for d in deployments(ws, ep)} | {dep: 100}, None)
    else:  # Azure lists every deployment in the endpoint's traffic, at 0 until given some

        def listed(r: dict) -> None:
            r.setdefault("traffic", {}).setdefault(dep, 0)

        ws.store.update(EP, ep, listed)
    return public(rec)


def update_deployment_in_place(
    ws: Workspace, endpoint: str, name: str, overrides: list[dict]
) -> dict[str, Any]:
    """`online-deployment update -n -e --set k=v` (no --file): the stored deployment with the
    changes applied, loaded and validated like a file, then rolled out."""
    import tempfile

    import yaml

    rec = get_deployment(ws, endpoint, name)
    spec = deployment.spec_of(rec, DEPLOYMENT_SCHEMAS.get(rec.get("type") or "managed"))
    cc = spec.get("code_configuration")
    if isinstance(cc, dict) and cc.get("code"):
        cc["code"] = rec["_runtime"]["code_dir"]  # the snapshot taken at create
    with tempfile.TemporaryDirectory(prefix="amlocal-update-") as tmp:
        file = Path(tmp) / f"{name}.yml"
        file.write_text(yaml.safe_dump(spec, sort_keys=False))
        try:
            return create_or_update_deployment(
                ws, file, name, endpoint, overrides, all_traffic=False, creating=False
            )
        except InvalidInput as exc:
            raise InvalidInput(str(exc).replace(str(file), f"deployment '{name}'")) from None


def set_traffic(
    ws: Workspace, name: str, traffic: dict[str, int] | None, mirror: dict[str, int] | None
) -> dict[str, Any]:
    return create_or_update_endpoint(ws, None, name, None, traffic, mirror, creating=False)


def show_deployment(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    rec = get_deployment(ws, endpoint, name)
    status = ensure_daemon(ws, endpoint)
    live = status["deployments"].get(name)
    out = public(rec)
    if live is not None and live.get("state") == "Failed":
        out["provisioning_state"] = "Failed"
    return out


def delete_deployment(ws: Workspace, endpoint: str, name: str) -> None:
    ep = get_endpoint(ws, endpoint)
    get_deployment(ws, endpoint, name)
    if (ep.get("traffic") or {}).get(name, 0) > 0 or (ep.get("mirror_traffic") or {}).get(name):
        raise InvalidInput(
            f"deployment '{name}' takes traffic on '{endpoint}': set its traffic to 0 first "
            f'(amlocal online-endpoint update -n {endpoint} --traffic "{name}=0 ...")'
        )
    ws.store.delete(DEP, f"{endpoint}:{name}")

    def drop(r: dict) -> None:
        r["traffic"] = {k: v for k, v in (r.get("traffic") or {}).items() if k != name}
        r["mirror_traffic"] = {
            k: v for k, v in (r.get("mirror_traffic") or {}).items() if k != name
        }

    ws.store.update(EP, endpoint, drop)
    if _daemon_pid(ws, endpoint, ep["_port"]) is not None:
        control(ws, endpoint, "reload")
    import shutil

    shutil.rmtree(paths.deployment_dir(ws.home, endpoint, name), ignore_errors=True)


def logs(ws: Workspace, endpoint: str, name: str, lines: int | None) -> str:
    get_deployment(ws, endpoint, name)
    from amlocal.endpoints.instances import tail

    log = paths.deployment_dir(ws.home, endpoint, name) / "instance-0.log"
    return tail(log, lines or 10_000)
