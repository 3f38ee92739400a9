"""Batch endpoint invocation: `batch-endpoint invoke` submits a job, as Azure does.

`job show|stream|list|download|cancel` then work on it. This module only reads the endpoint's
and deployment's records and writes a plan: it imports neither azure-ai-ml nor MLflow.

* a model deployment (`type: model`) becomes a standalone plan of kind `parallel`, run by
  `amlocal.jobs.kinds.parallel.step` with the deployment's settings (batch-deployment defaults),
  input `input_data` and output `score` (Azure's names), `output_file_name` in it;
* a pipeline-component deployment (`type: pipeline`) becomes a pipeline plan whose steps
  are the component's jobs and whose inputs are the component's, bound from `--file`
  (`inputs:`/`outputs:` as in Azure's invoke YAML), `--set inputs.x=...` and `--input`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from amlocal.endpoints.verbs.batch_endpoint import deployment_record, get_endpoint
from amlocal.errors import InvalidInput
from amlocal.workspace import Workspace, public_job

if TYPE_CHECKING:
    from amlocal.jobs.types import Plan

DATA_TYPES = {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model"}


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
    from amlocal.jobs import runner

    ep = get_endpoint(ws, name)
    dep_name = deployment or (ep.get("defaults") or {}).get("deployment_name")
    if not dep_name:
        raise InvalidInput(
            f"batch endpoint '{name}' has no default deployment: pass --deployment-name, or "
            f"create one with `batch-deployment create ... --set-default`"
        )
    dep = deployment_record(ws, name, dep_name)
    rt = dep["_runtime"]
    inputs, outputs = _invoke_io(invoke_file, sets)
    req = _Request(inputs, outputs, input, input_type, output_path, mini_batch_size, instance_count)
    plan = _pipeline_plan(ep, dep, req) if rt["kind"] == "pipeline" else _model_plan(ep, dep, req)
    if experiment_name:
        plan["experiment_name"] = experiment_name
    record = runner.submit(
        ws, cast("Plan", plan), name=job_name, _batch_endpoint=name, _batch_deployment=dep_name
    )
    runner.spawn_runner(ws, record["name"])
    return public_job(ws.store.get("job", record["name"]) or record)


@dataclass(frozen=True)
class _Request:
    """What one invocation asks of a deployment, from its flags and invoke file: both kinds
    of plan read it (the model plan all of it, the pipeline plan the inputs and outputs)."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    input: str | None  # --input
    input_type: str | None
    output_path: str | None
    mini_batch_size: int | None
    instance_count: int | None


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


def _model_plan(ep: dict[str, Any], dep: dict[str, Any], req: _Request) -> dict[str, Any]:
    rt = dep["_runtime"]
    data: dict[str, Any]
    if req.input is not None:
        kind = req.input_type or "uri_folder"
        data = {"type": kind, "path": _input_path(req.input), "mode": None}
    elif len(req.inputs) == 1:
        v = next(iter(req.inputs.values()))
        v = v if isinstance(v, dict) else {"path": str(v)}
        data = {"type": v.get("type") or "uri_folder", "path": _input_path(str(v.get("path")))}
        data["mode"] = v.get("mode")
    else:
        raise InvalidInput("a model deployment needs one input: --input <folder|file|asset>")
    if data["type"] not in ("uri_folder", "uri_file", "mltable"):
        raise InvalidInput(f"--input-type must be uri_folder or uri_file, got {data['type']}")
    _check_local_input(data["path"], data["type"])
    out = req.outputs.get("score") or {}
    out_path = req.output_path or (out.get("path") if isinstance(out, dict) else None)
    settings = dict(rt["settings"])
    if req.mini_batch_size is not None:
        settings["mini_batch_size"] = req.mini_batch_size
    if req.instance_count is not None:
        settings["instance_count"] = req.instance_count
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
            "python": rt.get("python"),  # chosen (and built) at deployment create
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


def _pipeline_plan(ep: dict[str, Any], dep: dict[str, Any], req: _Request) -> dict[str, Any]:
    rt = dep["_runtime"]
    decls: dict[str, Any] = rt["inputs"]
    inputs, outputs = req.inputs, req.outputs
    if req.input is not None:  # the component's only data input, for convenience
        data_inputs = [k for k, v in decls.items() if v.get("type") in DATA_TYPES]
        if len(data_inputs) != 1:
            raise InvalidInput(
                f"--input is ambiguous for this pipeline deployment (data inputs: "
                f"{', '.join(data_inputs) or 'none'}); use --set inputs.<name>.path=..."
            )
        inputs.setdefault(data_inputs[0], {"type": req.input_type, "path": req.input})
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
            if given is None and isinstance(decl.get("default"), dict):
                given = decl["default"]  # a job_definition input: the job's own value
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
            if isinstance(given, dict):  # `{type: string, default: x}`, as the docs' inputs.yml
                if "default" not in given and "value" not in given:
                    raise InvalidInput(
                        f"input '{k}' ({decl.get('type')}): a literal input is a value, or "
                        f"{{type, default: <value>}}; got keys {', '.join(map(str, given))}"
                    )
                given = given.get("default", given.get("value"))
            value = given if given is not None else decl.get("default")
            if value is None and not decl.get("optional"):
                raise InvalidInput(f"deployment '{dep['name']}' needs input '{k}'")
            plan_inputs[k] = {"literal": value}
    plan_outputs = {}
    for k, decl in rt["outputs"].items():
        o = outputs.get(k)
        o = o if isinstance(o, dict) else {}
        plan_outputs[k] = {
            "type": decl.get("type", "uri_folder"),
            "path": o.get("path") or (req.output_path if len(rt["outputs"]) == 1 else None),
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
