"""Batch deployments: `batch-deployment create|show|list|delete`.

Everything slow about a batch endpoint happens here, at create, so that `invoke` only reads
records and writes a plan: azure-ai-ml validation, the registered model downloaded to a
folder, the scoring code and the pipeline component's code snapshotted, the pipeline
component turned into plan steps. The record keeps the result under `_runtime`: for a model
deployment (`type: model`) the code, entry script, model folder, environment and settings;
for a pipeline-component deployment (`type: pipeline`) the component's inputs, outputs and
steps (from a file, a registered component, or a finished pipeline job).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from amlocal import endpoints
from amlocal.endpoints import deployment_env
from amlocal.endpoints.verbs import deployment
from amlocal.endpoints.verbs.batch_endpoint import DEP, EP, deployment_record, get_endpoint
from amlocal.errors import AmlocalError, InvalidInput, NotFound
from amlocal.workspace import Workspace, public

MLFLOW_DRIVER = Path(endpoints.__file__).parent / "mlflow_batch" / "mlflow_batch_driver.py"


def get_deployment(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    get_endpoint(ws, endpoint)
    return deployment_record(ws, endpoint, name)


def list_deployments(ws: Workspace, endpoint: str) -> list[dict[str, Any]]:
    get_endpoint(ws, endpoint)
    return [public(r) for r in ws.store.list(DEP, parent=endpoint)]


def delete_deployment(ws: Workspace, endpoint: str, name: str) -> None:
    ep = get_endpoint(ws, endpoint)
    deployment_record(ws, endpoint, name)
    if (ep.get("defaults") or {}).get("deployment_name") == name:
        others = [d for d in ws.store.list(DEP, parent=endpoint) if d["name"] != name]
        if others:
            raise InvalidInput(
                f"deployment '{name}' is the default of batch endpoint '{endpoint}': make "
                f"another deployment the default first (batch-endpoint update --set "
                f"defaults.deployment_name=<name>)"
            )
        ws.store.update(EP, endpoint, lambda r: r["defaults"].update(deployment_name=None))
    ws.store.delete(DEP, f"{endpoint}:{name}")


def assets_ref(env: Any) -> str | None:
    """The asset name of an `azureml:name[:version|@label]` environment reference."""
    from amlocal import assets

    parsed = assets.parse_ref(env) if isinstance(env, str) else None
    return parsed[0] if parsed else None


def _environment(ws: Workspace, entity: Any, d: dict[str, Any], where: str) -> Any:
    """The environment as a plan refers to it (checked now, as Azure checks at create)."""
    from amlocal.jobs import environments

    env = d.get("environment")
    if env is None:
        return None
    if isinstance(env, str) and not env.startswith("azureml:"):
        env = f"azureml:{env}"
    parsed = assets_ref(env)
    if parsed is None or not ws.store.versions("environment", parsed):
        deployment.curated_environment(env, where)  # an unknown curated name fails create
    if isinstance(env, dict):
        from amlocal.assets.environment import environment_record

        env = environment_record(entity.environment)
    environments.resolve(ws, env, where)
    return env


def _serving(
    ws: Workspace, env: Any, mlflow_model: Path | None, name: str, where: str
) -> deployment_env.Serving:
    """Where the mini-batch workers run (`amlocal.endpoints.deployment_env`), decided and
    built at create as Azure builds the deployment's image: the environment's venv, or the
    project venv (said so on stderr with every pin that moves)."""
    from amlocal import assets

    if isinstance(env, str):
        definition: dict[str, Any] | None = None
        if not _registered(ws, env):
            definition = deployment.curated_environment(env, where)
        if definition is None:
            try:
                definition = assets.get(ws, "environment", env)
            except AmlocalError:  # another registry's: not reproducible offline (as for jobs)
                return deployment_env.PROJECT
    elif isinstance(env, dict):
        definition = env
    elif mlflow_model is not None:
        definition = deployment_env.mlflow_environment(mlflow_model)
    else:
        return deployment_env.PROJECT
    if definition is None:
        return deployment_env.PROJECT
    label = deployment_env.label(definition)
    served = deployment_env.resolve(definition, label, online=False, mlflow=env is None)
    return deployment_env.announce(served, name, "runs")


def _registered(ws: Workspace, ref: str) -> bool:
    parsed = assets_ref(ref)
    return parsed is not None and bool(ws.store.versions("environment", parsed))


def _model_runtime(
    ws: Workspace, entity: Any, d: dict[str, Any], file: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fields shown, private runtime) of a model deployment."""
    base = file.parent.resolve()
    model = deployment.resolve_model(ws, entity.model, base, str(file))
    env = _environment(ws, entity, d, str(file))
    scoring = deployment.resolve_scoring(
        ws,
        entity.code_configuration,
        model,
        has_environment=env is not None,
        base=base,
        where=str(file),
        mlflow_driver=MLFLOW_DRIVER,
        script_needs_environment=True,
    )
    no_code = not getattr(entity.code_configuration, "code", None)
    served = _serving(ws, env, model.model_dir if no_code else None, str(entity.name), str(file))
    settings = {
        k: d[k]
        for k in (
            "mini_batch_size",
            "max_concurrency_per_instance",
            "error_threshold",
            "retry_settings",
            "output_action",
            "output_file_name",
            "logging_level",
            "environment_variables",
        )
        if d.get(k) is not None
    }
    settings.update({k: v for k, v in (d.get("settings") or {}).items() if v is not None})
    settings["instance_count"] = int((d.get("resources") or {}).get("instance_count") or 1)
    runtime = {
        "kind": "model",
        "code_dir": str(scoring.code_dir),
        "entry_script": scoring.entry_script,
        "model_dir": str(model.model_dir),
        "environment": env,
        "python": served.python,  # the mini-batch workers' interpreter (decided at create)
        "settings": settings,
        "environment_variables": {
            str(k): str(v) for k, v in (d.get("environment_variables") or {}).items()
        },
    }
    return {"model": model.ref}, runtime


def _pipeline_runtime(ws: Workspace, d: dict[str, Any], file: Path) -> dict[str, Any]:
    """A pipeline component as plan steps (code snapshotted), its inputs and outputs: given
    as a file, a registered reference (`azureml:name:version`, `azureml:name@latest`), or
    a finished pipeline job (`job_definition: azureml:<job>`)."""
    from amlocal.jobs import plan as planlib

    if d.get("job_definition") and not d.get("component"):
        return _job_definition_runtime(ws, d, file)
    component = copy.deepcopy(d.get("component") or {})
    base = file.parent.resolve()
    if isinstance(component, str):
        component, base = _registered_component(ws, component, file)
    if component.get("type") != "pipeline":
        raise InvalidInput(f"{file}: component: expected a pipeline component")
    steps = {}
    for sname, node in (component.get("jobs") or {}).items():
        _snapshot_code(ws, node)
        steps[sname] = planlib.make_step(sname, node, base, where=f"{file}: component.jobs.{sname}")
    return {
        "kind": "pipeline",
        "inputs": component.get("inputs") or {},
        "outputs": component.get("outputs") or {},
        "steps": steps,
        "settings": d.get("settings") or {},
        "experiment_name": component.get("display_name") or component.get("name"),
    }


def _registered_component(ws: Workspace, ref: str, file: Path) -> tuple[dict[str, Any], Path]:
    """A registered component's definition and the folder its relative paths start from."""
    from amlocal import assets

    try:
        record = assets.get(
            ws, "component", ref if ref.startswith("azureml:") else f"azureml:{ref}"
        )
    except (InvalidInput, NotFound) as exc:
        raise type(exc)(f"{file}: component: {exc}") from None
    source = Path(str(record.get("_source") or ""))
    base = source.parent if source.is_absolute() and source.parent.is_dir() else Path.cwd()
    return public(record), base


def _job_definition_runtime(ws: Workspace, d: dict[str, Any], file: Path) -> dict[str, Any]:
    """Azure makes a pipeline component of a pipeline job's definition: its steps, and its
    inputs with the job's values as defaults."""
    ref = str(d["job_definition"])
    name = ref.removeprefix("azureml:").rsplit("/", 1)[-1]
    job = ws.store.get("job", name)
    if job is None:
        raise NotFound(f"{file}: job_definition: job '{name}' does not exist")
    plan = job.get("_plan") or {}
    if plan.get("kind") != "pipeline":
        raise InvalidInput(f"{file}: job_definition: job '{name}' is not a pipeline job")
    inputs: dict[str, Any] = {}
    for k, v in (plan.get("inputs") or {}).items():
        if "literal" in v:
            inputs[k] = {"type": "string", "default": v["literal"], "optional": True}
        else:
            value = dict(v)
            path = str(value.get("path") or "")
            if path and not path.startswith("azureml:") and "://" not in path:
                value["path"] = str(Path(plan.get("base_dir") or ".") / path)
            inputs[k] = {"type": v.get("type") or "uri_folder", "default": value, "optional": True}
    outputs = {
        k: {"type": v.get("type") or "uri_folder"} for k, v in plan.get("outputs", {}).items()
    }
    return {
        "kind": "pipeline",
        "inputs": inputs,
        "outputs": outputs,
        "steps": copy.deepcopy(plan.get("steps") or {}),
        "settings": d.get("settings") or plan.get("settings") or {},
        "experiment_name": plan.get("experiment_name") or name,
    }


def _snapshot_code(ws: Workspace, node: dict[str, Any]) -> None:
    """Replace local code folders in a node's component (and nested ones) by snapshots."""
    comp = node.get("component")
    if not isinstance(comp, dict):
        return
    for holder in (comp, comp.get("task") or {}):
        code = holder.get("code")
        if code and not str(code).startswith(("azureml:", "http")) and Path(code).is_dir():
            holder["code"] = str(deployment.snapshot(ws, Path(code)))
    for sub in (comp.get("jobs") or {}).values():
        _snapshot_code(ws, sub)


def create_or_update_deployment(
    ws: Workspace,
    file: Path,
    name: str | None,
    endpoint: str | None,
    overrides: list[dict[str, Any]],
    *,
    set_default: bool,
    creating: bool,
) -> dict[str, Any]:
    from amlocal import loader

    entity = deployment.load(DEP, file, name, endpoint, overrides)
    loader.validate(entity, file)
    ep = get_endpoint(ws, entity.endpoint_name)
    key = f"{ep['name']}:{entity.name}"
    existing = ws.store.get(DEP, key)
    if existing is None and not creating:
        raise NotFound(f"deployment '{entity.name}' does not exist on '{ep['name']}'")
    d = dict(entity._to_dict())
    kind = d.get("type") or "model"
    if kind == "pipeline":
        runtime = _pipeline_runtime(ws, d, file)
        d["component"] = _component_summary(d.get("component"))
    else:
        shown, runtime = _model_runtime(ws, entity, d, file)
        d.update(shown)
    d.update(
        name=entity.name,
        endpoint_name=ep["name"],
        type=kind,
        id=ws.arm_id(f"batchEndpoints/{ep['name']}/deployments/{entity.name}"),
        provisioning_state="Succeeded",
    )
    d["_runtime"] = runtime
    ws.store.put(DEP, key, d, parent=ep["name"])
    if set_default:
        ws.store.update(
            EP, ep["name"], lambda r: r.setdefault("defaults", {}).update(deployment_name=d["name"])
        )
    return public(d)


def _component_summary(component: Any) -> Any:
    """What `show` prints for a deployment's component: its identity, not the whole graph."""
    if not isinstance(component, dict):
        return component
    keep = ("name", "version", "display_name", "description", "type", "inputs", "outputs")
    out = {k: component.get(k) for k in keep if component.get(k) is not None}
    out["jobs"] = list((component.get("jobs") or {}).keys())
    return out
