"""Batch endpoints and deployments: records in the workspace store, invocations as jobs.

A batch endpoint has no server: `invoke` submits a job, as Azure does, and `job
show|stream|list|download|cancel` work on it. Everything slow happens at `batch-deployment
create` (azure-ai-ml validation, the registered model downloaded to a folder, the scoring
code and pipeline component code snapshotted, the pipeline component turned into plan
steps), so `invoke` only reads records and writes a plan: it imports neither azure-ai-ml nor
MLflow.

Invocations:
* a model deployment (`type: model`) becomes a standalone plan of kind `parallel`, run by
  `amlocal.jobs.parallel_step` with the deployment's settings (batch-deployment defaults),
  input `input_data` and output `score` (Azure's names), `output_file_name` in it;
* a pipeline-component deployment (`type: pipeline`) becomes a pipeline plan whose steps
  are the component's jobs and whose inputs are the component's, bound from `--file`
  (`inputs:`/`outputs:` as in Azure's invoke YAML), `--set inputs.x=...` and `--input`.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace, public

EP, DEP = "batch-endpoint", "batch-deployment"
DATA_TYPES = {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model"}
MLFLOW_DRIVER = Path(__file__).parent / "mlflow_batch"


# -- endpoints -------------------------------------------------------------------------------
def get_endpoint(ws: Workspace, name: str) -> dict[str, Any]:
    rec = ws.store.get(EP, name)
    if rec is None:
        raise NotFound(f"batch endpoint '{name}' does not exist")
    return rec


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
        from amlocal import loader

        entity = loader.load(EP, file, overrides)
        if name:
            entity.name = name
        spec = dict(entity._to_dict())
        name = entity.name
    if not name:
        raise InvalidInput("the endpoint needs a name: --name or `name:` in the YAML")
    existing = ws.store.get(EP, name)
    if existing is None and not creating:
        raise NotFound(f"batch endpoint '{name}' does not exist")
    if file is None and overrides:
        spec = _apply_sets(dict(existing or {}), overrides)
    rec = dict(existing or {})
    rec.update({k: v for k, v in spec.items() if v is not None})
    defaults = dict(rec.get("defaults") or {})
    defaults.setdefault("deployment_name", None)
    if spec.get("defaults", {}).get("deployment_name"):
        _get_deployment(ws, name, spec["defaults"]["deployment_name"])
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


def _apply_sets(rec: dict[str, Any], overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """`--set a.b=c` on an existing record (update without a file)."""
    for item in overrides:
        for key, value in item.items():
            node = rec
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
    return rec


def list_endpoints(ws: Workspace) -> list[dict[str, Any]]:
    return [public(r) for r in ws.store.list(EP)]


def delete_endpoint(ws: Workspace, name: str) -> None:
    get_endpoint(ws, name)
    for d in ws.store.list(DEP, parent=name):
        ws.store.delete(DEP, f"{name}:{d['name']}")
    ws.store.delete(EP, name)


def list_jobs(ws: Workspace, name: str) -> list[dict[str, Any]]:
    from amlocal.commands.job import public as job_public

    get_endpoint(ws, name)
    jobs = [r for r in ws.store.list("job") if r.get("_batch_endpoint") == name]
    jobs.reverse()  # newest first, as az ml lists them
    return [job_public(r) for r in jobs]


# -- deployments -----------------------------------------------------------------------------
def _get_deployment(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    rec = ws.store.get(DEP, f"{endpoint}:{name}")
    if rec is None:
        raise NotFound(f"deployment '{name}' does not exist on batch endpoint '{endpoint}'")
    return rec


def get_deployment(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    get_endpoint(ws, endpoint)
    return _get_deployment(ws, endpoint, name)


def list_deployments(ws: Workspace, endpoint: str) -> list[dict[str, Any]]:
    get_endpoint(ws, endpoint)
    return [public(r) for r in ws.store.list(DEP, parent=endpoint)]


def delete_deployment(ws: Workspace, endpoint: str, name: str) -> None:
    ep = get_endpoint(ws, endpoint)
    _get_deployment(ws, endpoint, name)
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


def snapshot(ws: Workspace, code: Path) -> Path:
    """Copy code into the workspace, as Azure uploads it at create: later edits to the
    working tree never change a deployment."""
    from amlocal.snapshot import materialize, snapshot_digest

    digest = snapshot_digest(code, ws.store)
    dest = ws.home / "snapshots" / digest[:32]
    if not dest.exists():
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        materialize(code, tmp)
        tmp.rename(dest)
    return dest


def _model(ws: Workspace, ref: Any, base: Path) -> tuple[str, Path]:
    """(reference as shown, local folder) of a deployment's model."""
    from amlocal import assets

    if hasattr(ref, "path") and getattr(ref, "path", None):  # an inline model
        p = Path(str(ref.path))
        return str(ref.path), assets.model_dir(ws, str(p if p.is_absolute() else base / p))
    ref = str(ref)
    if not ref.startswith(("azureml:", "models:/")) and assets.parse_ref(f"azureml:{ref}"):
        ref = f"azureml:{ref}"
    if ref.startswith(("azureml:", "models:/")):
        name, version = assets.registered_model_version(ws, ref)
        return f"azureml:{name}:{version}", assets.model_dir(ws, f"azureml:{name}:{version}")
    return ref, assets.model_dir(ws, ref, base)


def _environment(ws: Workspace, entity: Any, d: dict[str, Any], where: str) -> Any:
    """The environment as a plan refers to it (checked now, as Azure checks at create)."""
    from amlocal.jobs import environments

    env = d.get("environment")
    if env is None:
        return None
    if isinstance(env, str) and not env.startswith("azureml:"):
        env = f"azureml:{env}"
    if isinstance(env, dict):
        from amlocal import assets

        env = assets.environment_record(entity.environment)
    environments.resolve(ws, env, where)
    return env


def _model_runtime(
    ws: Workspace, entity: Any, d: dict[str, Any], file: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fields shown, private runtime) of a model deployment."""
    base = file.parent.resolve()
    if entity.model is None:
        raise InvalidInput(f"{file}: model: a model deployment needs a model")
    model_ref, model_path = _model(ws, d.get("model") or entity.model, base)
    env = _environment(ws, entity, d, str(file))
    cc = entity.code_configuration
    if cc is not None and cc.code:
        code = Path(str(cc.code))
        code = (code if code.is_absolute() else base / code).resolve()
        script = cc.scoring_script
        if not script or not (code / script).is_file():
            raise InvalidInput(f"{file}: code_configuration: {code / str(script)} not found")
        if env is None:
            raise InvalidInput(f"{file}: a deployment with a scoring script needs an environment")
        code_dir, entry = snapshot(ws, code), str(script)
    else:
        # MLflow no-code deployment: Azure generates the driver and the environment.
        if not (model_path / "MLmodel").is_file() and not list(model_path.glob("*/MLmodel")):
            raise InvalidInput(
                f"{file}: a deployment without code_configuration needs an MLflow model "
                f"(type: mlflow_model); {model_ref} has no MLmodel file"
            )
        if env is not None:
            raise InvalidInput(f"{file}: an environment needs code_configuration (and back)")
        code_dir, entry = snapshot(ws, MLFLOW_DRIVER), "mlflow_batch_driver.py"
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
        "code_dir": str(code_dir),
        "entry_script": entry,
        "model_dir": str(model_path),
        "environment": env,
        "settings": settings,
        "environment_variables": {
            str(k): str(v) for k, v in (d.get("environment_variables") or {}).items()
        },
    }
    return {"model": model_ref}, runtime


def _pipeline_runtime(ws: Workspace, d: dict[str, Any], file: Path) -> dict[str, Any]:
    """A pipeline component as plan steps (code snapshotted), its inputs and outputs."""
    from amlocal.jobs import plan as planlib

    component = copy.deepcopy(d.get("component") or {})
    if isinstance(component, str):
        raise InvalidInput(
            f"{file}: component: amlocal deploys pipeline components given as a file "
            f"(component: ./x.yml), not registered references"
        )
    if component.get("type") != "pipeline":
        raise InvalidInput(f"{file}: component: expected a pipeline component")
    base = file.parent.resolve()
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


def _snapshot_code(ws: Workspace, node: dict[str, Any]) -> None:
    """Replace local code folders in a node's component (and nested ones) by snapshots."""
    comp = node.get("component")
    if not isinstance(comp, dict):
        return
    for holder in (comp, comp.get("task") or {}):
        code = holder.get("code")
        if code and not str(code).startswith(("azureml:", "http")) and Path(code).is_dir():
            holder["code"] = str(snapshot(ws, Path(code)))
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

    entity = loader.load(DEP, file, overrides)
    if name:
        entity.name = name
    if endpoint:
        entity.endpoint_name = endpoint
    if not entity.endpoint_name:
        raise InvalidInput(f"{file}: no endpoint: set `endpoint_name:` or pass --endpoint-name")
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


# -- invoke ----------------------------------------------------------------------------------
def _input_path(value: str) -> str:
    """Local paths become absolute (the job runs elsewhere); asset refs and URIs stay."""
    if value.startswith("azureml:") or "://" in value:
        return value
    return str(Path(value).expanduser().resolve())


def _check_local_input(path: str, kind: str) -> None:
    """The errors Azure reports at invoke for a local input (it uploads it first)."""
    if path.startswith("azureml:") or "://" in path:
        return
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"--input {path}: no such file or folder")
    if kind == "uri_folder" and not p.is_dir():
        raise InvalidInput(f"--input {path}: --input-type uri_folder needs a folder")
    if kind == "uri_file" and not p.is_file():
        raise InvalidInput(f"--input {path}: --input-type uri_file needs a file")
    if p.is_dir() and not any(f for f in p.rglob("*") if f.is_file()):
        raise InvalidInput(f"--input {path}: the folder is empty: nothing to score")


def invoke(
    ws: Workspace,
    name: str,
    *,
    deployment: str | None = None,
    input: str | None = None,  # noqa: A002 - az ml's flag name
    input_type: str | None = None,
    output_path: str | None = None,
    mini_batch_size: int | None = None,
    instance_count: int | None = None,
    sets: list[dict[str, Any]] | None = None,
    invoke_file: dict[str, Any] | None = None,
    experiment_name: str | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """Submit the invocation as a job and start its runner; returns the job record."""
    from amlocal.jobs import pipeline

    ep = get_endpoint(ws, name)
    dep_name = deployment or (ep.get("defaults") or {}).get("deployment_name")
    if not dep_name:
        raise InvalidInput(
            f"batch endpoint '{name}' has no default deployment: pass --deployment-name, or "
            f"create one with `batch-deployment create ... --set-default`"
        )
    dep = _get_deployment(ws, name, dep_name)
    rt = dep["_runtime"]
    inputs, outputs = _invoke_io(invoke_file, sets)
    if rt["kind"] == "pipeline":
        plan = _pipeline_plan(ep, dep, inputs, outputs, input, input_type, output_path)
    else:
        plan = _model_plan(
            ep,
            dep,
            inputs,
            outputs,
            input,
            input_type,
            output_path,
            mini_batch_size,
            instance_count,
        )
    if experiment_name:
        plan["experiment_name"] = experiment_name
    record = pipeline.submit(
        ws, plan, name=job_name, _batch_endpoint=name, _batch_deployment=dep_name
    )
    pipeline.spawn_runner(ws, record["name"])
    from amlocal.commands.job import public as job_public

    return job_public(ws.store.get("job", record["name"]) or record)


def _invoke_io(
    invoke_file: dict[str, Any] | None, sets: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inputs and outputs from an invoke YAML (`inputs:`/`outputs:`) and `--set
    inputs.x=v` / `inputs.x.path=p` / `outputs.y.path=p`."""
    doc = copy.deepcopy(invoke_file or {})
    inputs: dict[str, Any] = dict(doc.get("inputs") or {})
    outputs: dict[str, Any] = dict(doc.get("outputs") or {})
    for item in sets or []:
        for key, value in item.items():
            scope, _, rest = key.partition(".")
            if scope not in ("inputs", "outputs") or not rest:
                raise InvalidInput(
                    f"--set {key}: batch-endpoint invoke takes inputs.<name>[.path|.type]=... "
                    f"and outputs.<name>.path=..."
                )
            table = inputs if scope == "inputs" else outputs
            port, _, attr = rest.partition(".")
            if attr:
                cur = table.get(port)
                cur = dict(cur) if isinstance(cur, dict) else {}
                cur[attr] = value
                table[port] = cur
            else:
                table[port] = value
    return inputs, outputs


def _model_plan(
    ep: dict[str, Any],
    dep: dict[str, Any],
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    input: str | None,  # noqa: A002
    input_type: str | None,
    output_path: str | None,
    mini_batch_size: int | None,
    instance_count: int | None,
) -> dict[str, Any]:
    rt = dep["_runtime"]
    data: dict[str, Any]
    if input is not None:
        kind = input_type or "uri_folder"
        data = {"type": kind, "path": _input_path(input), "mode": None}
    elif len(inputs) == 1:
        v = next(iter(inputs.values()))
        v = v if isinstance(v, dict) else {"path": str(v)}
        data = {"type": v.get("type") or "uri_folder", "path": _input_path(str(v.get("path")))}
        data["mode"] = v.get("mode")
    else:
        raise InvalidInput("a model deployment needs one input: --input <folder|file|asset>")
    if data["type"] not in ("uri_folder", "uri_file", "mltable"):
        raise InvalidInput(f"--input-type must be uri_folder or uri_file, got {data['type']}")
    _check_local_input(data["path"], data["type"])
    out = outputs.get("score") or {}
    out_path = output_path or (out.get("path") if isinstance(out, dict) else None)
    settings = dict(rt["settings"])
    if mini_batch_size is not None:
        settings["mini_batch_size"] = mini_batch_size
    if instance_count is not None:
        settings["instance_count"] = instance_count
    task = {"type": "run_function", "code": rt["code_dir"], "entry_script": rt["entry_script"]}
    if rt.get("environment") is not None:
        task["environment"] = rt["environment"]
    component = {
        "type": "parallel",
        "name": f"{ep['name']}-{dep['name']}",
        "is_deterministic": False,  # every invocation runs, as in Azure
        "inputs": {"input_data": {"type": data["type"]}},
        "outputs": {"score": {"type": "uri_folder"}},
        "input_data": "${{inputs.input_data}}",
        "task": task,
    }
    step = {
        "name": dep["name"],
        "kind": "parallel",
        "display_name": dep["name"],
        "component_ref": None,
        "component": component,
        "inputs": {"input_data": {"data": data}},
        "outputs": {"score": {"type": "uri_folder", "path": out_path, "mode": None}},
        "environment_variables": {},
        "limits": {},
        "compute": dep.get("compute"),
        "resources": {"instance_count": settings["instance_count"]},
        "spec": {},
        "batch": {
            "settings": settings,
            "code_dir": rt["code_dir"],
            "entry_script": rt["entry_script"],
            "model_dir": rt["model_dir"],
            "environment_variables": rt.get("environment_variables") or {},
            "output_name": "score",
            "deployment": dep["name"],
            "model": dep.get("model"),
        },
    }
    return {
        "kind": "parallel",
        "source": f"batch-endpoint {ep['name']} / deployment {dep['name']}",
        "base_dir": str(Path.cwd()),
        "spec": {
            "type": "parallel",
            "compute": dep.get("compute"),
            "inputs": {"input_data": data},
        },
        "experiment_name": ep["name"],
        "display_name": None,
        "description": f"batch scoring with {ep['name']}/{dep['name']}",
        "tags": {},
        "step": step,
    }


def _pipeline_plan(
    ep: dict[str, Any],
    dep: dict[str, Any],
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    input: str | None,  # noqa: A002
    input_type: str | None,
    output_path: str | None,
) -> dict[str, Any]:
    rt = dep["_runtime"]
    decls: dict[str, Any] = rt["inputs"]
    if input is not None:  # the component's only data input, for convenience
        data_inputs = [k for k, v in decls.items() if v.get("type") in DATA_TYPES]
        if len(data_inputs) != 1:
            raise InvalidInput(
                f"--input is ambiguous for this pipeline deployment (data inputs: "
                f"{', '.join(data_inputs) or 'none'}); use --set inputs.<name>.path=..."
            )
        inputs.setdefault(data_inputs[0], {"type": input_type, "path": input})
    unknown = set(inputs) - set(decls)
    if unknown:
        raise InvalidInput(
            f"deployment '{dep['name']}' has no input(s) {', '.join(sorted(unknown))} "
            f"(inputs: {', '.join(decls) or 'none'})"
        )
    plan_inputs: dict[str, Any] = {}
    for k, decl in decls.items():
        given = inputs.get(k)
        if decl.get("type") in DATA_TYPES:
            if given is None:
                if decl.get("optional"):
                    plan_inputs[k] = {"literal": None}
                    continue
                raise InvalidInput(
                    f"deployment '{dep['name']}' needs input '{k}' ({decl['type']}): pass it "
                    f"in --file (inputs: {k}: {{type, path}}) or --set inputs.{k}.path=..."
                )
            g = given if isinstance(given, dict) else {"path": str(given)}
            plan_inputs[k] = {
                "type": g.get("type") or decl["type"],
                "path": _input_path(str(g["path"])),
                "mode": g.get("mode"),
            }
        else:
            value = given if given is not None else decl.get("default")
            if value is None and not decl.get("optional"):
                raise InvalidInput(f"deployment '{dep['name']}' needs input '{k}'")
            plan_inputs[k] = {"literal": value}
    plan_outputs = {}
    for k, decl in rt["outputs"].items():
        o = outputs.get(k) if isinstance(outputs.get(k), dict) else {}
        plan_outputs[k] = {
            "type": decl.get("type", "uri_folder"),
            "path": o.get("path") or (output_path if len(rt["outputs"]) == 1 else None),
            "mode": o.get("mode"),
        }
    settings = {k: v for k, v in (rt.get("settings") or {}).items() if v is not None}
    return {
        "kind": "pipeline",
        "source": f"batch-endpoint {ep['name']} / deployment {dep['name']}",
        "base_dir": str(Path.cwd()),
        "spec": {"type": "pipeline", "compute": settings.get("default_compute")},
        "experiment_name": ep["name"],
        "display_name": None,
        "description": f"pipeline deployment {ep['name']}/{dep['name']}",
        "tags": {},
        "settings": settings,
        "inputs": plan_inputs,
        "outputs": plan_outputs,
        "steps": copy.deepcopy(rt["steps"]),
    }
