"""Online deployments: `online-deployment create|update|show|delete|get-logs`.

A deployment YAML is resolved once, at create, into the record Azure would store plus a
private `_runtime` (code snapshot, model folder, environment variables, instance count,
probes) that the daemon runs. Create and update wait, as `az ml online-deployment create`
waits, until the deployment's instances pass their readiness probe (Succeeded) or fail
(Failed, with the instance log tail).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal import endpoints, yamlsafe
from amlocal.endpoints import deployment_env, paths
from amlocal.endpoints.verbs import deployment
from amlocal.endpoints.verbs.online_daemon import control, daemon_pid, ensure_daemon
from amlocal.endpoints.verbs.online_endpoint import set_traffic
from amlocal.endpoints.verbs.online_records import (
    DEP,
    EP,
    deployments,
    get_deployment,
    get_endpoint,
)
from amlocal.errors import AmlocalError, InvalidInput, NotFound
from amlocal.workspace import Workspace, public

if TYPE_CHECKING:
    from amlocal.loader import Overrides

SERVER_PACKAGE = "azureml-inference-server-http"
DEFAULT_TIMEOUT_MS = 5000  # Azure's request_timeout_ms default
DEFAULT_QUEUE_WAIT_MS = 500  # Azure's max_queue_wait_ms default (reference-yaml-deployment)
MLFLOW_DRIVER = Path(endpoints.__file__).parent / "mlflow_scoring" / "mlflow_score.py"
SCHEMA_BASE = "https://azuremlschemas.azureedge.net/latest/"
DEPLOYMENT_SCHEMAS = {
    "managed": SCHEMA_BASE + "managedOnlineDeployment.schema.json",
    "kubernetes": SCHEMA_BASE + "kubernetesOnlineDeployment.schema.json",
}


def _server_pin(env: dict[str, Any]) -> str | None:
    """The azureml-inference-server-http version an environment pins, if any."""
    conda = env.get("conda_file") or {}
    if isinstance(conda, str):
        conda = yamlsafe.load(conda, "conda_file") or {}
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
    from amlocal import assets, packages
    from amlocal.assets.environment import environment_record

    if env is None:
        return {}
    if isinstance(env, str) and not _registered(ws, env):
        curated = deployment.curated_environment(env, where)
        if curated is not None:
            return curated
    if isinstance(env, str):
        record = assets.get(ws, "environment", env)
    else:
        record = environment_record(env)
    pin = _server_pin(record)
    installed = packages.version(SERVER_PACKAGE)
    if pin is not None and pin != installed:
        raise InvalidInput(
            f"environment {record.get('name')} pins {SERVER_PACKAGE}=={pin} but this venv runs "
            f"{installed}: align the pins (environments/*.conda.yml and pyproject.toml)"
        )
    return record


def _serving(env: dict[str, Any], mlflow_model: Path | None, name: str) -> deployment_env.Serving:
    """Where the deployment's instances run (`amlocal.endpoints.deployment_env`): its
    environment's venv, built now if needed, or the project venv; says so on stderr."""
    if env:
        definition: dict[str, Any] | None = env
        label = deployment_env.label(env)
    elif mlflow_model is not None:
        definition = deployment_env.mlflow_environment(mlflow_model)
        label = str((definition or {}).get("name") or "mlflow-model")
    else:
        return deployment_env.PROJECT
    served = deployment_env.resolve(definition, label, online=True, mlflow=not env)
    if env.get("curated") and served.venv is None:
        deployment.warn_curated(env)
    return deployment_env.announce(served, name, "serves")


def _queue_wait_ms(rs: Any, where: str) -> int:
    """request_settings.max_queue_wait_ms: Azure's default 500 when unset; 0 or more."""
    value = getattr(rs, "max_queue_wait_ms", None)
    if value is None:
        return DEFAULT_QUEUE_WAIT_MS
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(
            f"{where}: request_settings.max_queue_wait_ms: expected an integer >= 0, got {value!r}"
        )
    return value


def _probe(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    names = ("initial_delay", "period", "timeout", "success_threshold", "failure_threshold")
    return {k: getattr(p, k) for k in names if getattr(p, k, None) is not None}


def build_deployment(
    ws: Workspace,
    file: Path,
    name: str | None,
    endpoint: str | None,
    overrides: Overrides,
) -> dict[str, Any]:
    """Load and resolve a deployment YAML into its record (what Azure would store)."""
    from amlocal.hashing import text_digest

    entity = deployment.load(DEP, file, name, endpoint, overrides)
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
    no_code = not getattr(entity.code_configuration, "code", None)
    served = _serving(env, model.model_dir if no_code else None, str(entity.name))
    rs = entity.request_settings
    mcr = int(getattr(rs, "max_concurrent_requests_per_instance", None) or 1)
    runtime = {
        "python": served.python,
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
        # Deprecated for managed endpoints but still honoured: how long a request waits in
        # the front door's queue for a free place before its 429 (0 allowed: no queueing).
        "max_queue_wait_ms": _queue_wait_ms(rs, str(file)),
        "liveness_probe": _probe(entity.liveness_probe),
        "readiness_probe": _probe(entity.readiness_probe),
    }
    if served.venv:  # the instance module, from a venv that does not have amlocal
        from amlocal.environments import cache_root

        runtime["pythonpath"] = deployment_env.import_path(cache_root())
    if served.notes:  # at the top of every instance log (get-logs)
        runtime["environment_notes"] = list(served.notes)
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
    overrides: Overrides,
    all_traffic: bool,
    creating: bool,
    only: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """`only` (`create --local`): checked before anything starts, then the deployment takes
    all the endpoint's traffic, as a local endpoint's single deployment does."""
    rec = build_deployment(ws, file, name, endpoint, overrides)
    ep, dep = rec["endpoint_name"], rec["name"]
    if only is not None:
        only(ws, ep, creating=dep)
        all_traffic = True
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

        def listed(r: dict[str, Any]) -> None:
            r.setdefault("traffic", {}).setdefault(dep, 0)

        ws.store.update(EP, ep, listed)
    return public(rec)


def update_deployment_in_place(
    ws: Workspace, endpoint: str, name: str, overrides: Overrides
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

    def drop(r: dict[str, Any]) -> None:
        r["traffic"] = {k: v for k, v in (r.get("traffic") or {}).items() if k != name}
        r["mirror_traffic"] = {
            k: v for k, v in (r.get("mirror_traffic") or {}).items() if k != name
        }

    ws.store.update(EP, endpoint, drop)
    if daemon_pid(ws, endpoint, ep["_port"]) is not None:
        control(ws, endpoint, "reload")
    import shutil

    shutil.rmtree(paths.deployment_dir(ws.home, endpoint, name), ignore_errors=True)


def logs(ws: Workspace, endpoint: str, name: str, lines: int | None) -> str:
    get_deployment(ws, endpoint, name)
    from amlocal.endpoints.daemon.instances import tail

    log = paths.deployment_dir(ws.home, endpoint, name) / "instance-0.log"
    return tail(log, lines or 10_000)
