"""From a job YAML to a plan: plain JSON the runner executes, with no azure-ai-ml needed.

The YAML is loaded and validated by azure-ai-ml exactly once per content: the plan is cached
under a digest of every file it was built from (the job YAML, component YAMLs and conda
files it references) plus the `--set` overrides, so a rerun never imports azure-ai-ml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal import loader
from amlocal.errors import InvalidInput
from amlocal.jobs import expressions as ex
from amlocal.jobs.control import (
    check_control,
    control_step,
    dependencies,
    name_loop_port,
    order_of,
)
from amlocal.loader import source_files
from amlocal.snapshot import absolute_includes
from amlocal.workspace import Workspace

if TYPE_CHECKING:
    from amlocal.jobs.types import Binding, OutputDecl, Plan, Step

PLAN_VERSION = "6"
DATA_TYPES = {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"}
CONTROL_KINDS = {"if_else", "do_while", "parallel_for"}  # amlocal.jobs.control
STEP_KINDS = {"command", "parallel", "sweep", "pipeline", *CONTROL_KINDS}


def load_plan(ws: Workspace, path: Path, overrides: list[dict[str, Any]]) -> Plan:
    """The validated plan for a job YAML, from the validation cache or from azure-ai-ml."""
    try:
        plan: Plan = loader.validated(
            "job",
            path,
            overrides,
            lambda entity: plan_from_entity(entity, path),
            files=source_files(path),
            tag=f"-plan{PLAN_VERSION}",
        )
    except InvalidInput as exc:
        raise InvalidInput(name_loop_port(path, str(exc))) from None
    return plan


# -- building from azure-ai-ml entities ---------------------------------------------------
def plan_from_entity(entity: Any, path: Path) -> dict[str, Any]:
    """The plan for a job entity loaded and validated by azure-ai-ml."""
    spec = entity._to_dict()
    base = path.resolve().parent
    kind = spec.get("type", "command")
    plan: dict[str, Any] = {
        "kind": kind,
        "source": str(path.resolve()),
        "base_dir": str(base),
        "spec": spec,
        **job_metadata(entity, spec),
    }
    if kind == "pipeline":
        settings = spec.get("settings") or {}
        plan["settings"] = settings
        raw_inputs = spec.get("inputs") or {}
        plan["inputs"] = {
            k: _pipeline_input(v, raw_inputs.get(k), base) for k, v in (entity.inputs or {}).items()
        }
        raw_outputs = spec.get("outputs") or {}
        plan["outputs"] = {  # `x:` with no body is kept by the entity, dropped by _to_dict()
            k: _output_decl(raw_outputs.get(k)) for k in [*(entity.outputs or {}), *raw_outputs]
        }
        plan["steps"] = {
            name: make_step(name, node, base, where=f"{path}: jobs.{name}")
            for name, node in (spec.get("jobs") or {}).items()
        }
        resolve_includes(
            entity.jobs, {n: {"component": s["component"]} for n, s in plan["steps"].items()}
        )
        _check_bindings(plan, path)
    elif kind in ("command", "sweep", "parallel"):
        step = make_step(spec.get("name") or "job", spec, base, where=str(path), standalone=True)
        plan["step"] = step
    else:
        raise InvalidInput(f"{path}: type '{kind}' jobs are not supported by amlocal")
    return plan


def job_metadata(entity: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """experiment_name, display_name, description, tags: a command job's `_to_dict()` drops
    them, the entity keeps them. No experiment_name: the submitter's directory (set at
    submission, as azure-ai-ml defaults it)."""
    return {
        key: getattr(entity, key, None) or spec.get(key)
        for key in ("experiment_name", "display_name", "description")
    } | {"tags": dict(getattr(entity, "tags", None) or spec.get("tags") or {})}


def resolve_includes(nodes: Any, dumped: dict[str, Any]) -> None:
    """Each component's `additional_includes` made absolute (they are relative to its own
    YAML, which `_to_dict()` forgets), through nested pipeline components too."""
    for name, node in (nodes or {}).items():
        component = getattr(node, "component", None)
        target = (dumped.get(name) or {}).get("component")
        if component is None or isinstance(component, str) or not isinstance(target, dict):
            continue
        if includes := absolute_includes(component):
            target["additional_includes"] = includes
        if getattr(component, "jobs", None):
            resolve_includes(component.jobs, target.get("jobs") or {})


def _pipeline_input(value: Any, raw: Any, base: Path) -> dict[str, Any]:
    data = getattr(value, "_data", value)
    path = getattr(data, "path", None)
    if isinstance(raw, dict) and raw.get("path") is not None:
        path = raw["path"]  # keeps the azureml: prefix the entity strips from asset refs
    if path is not None or getattr(data, "type", None) in DATA_TYPES:
        return {
            "type": getattr(data, "type", None) or "uri_folder",
            "path": _local_or_uri(str(path), base) if path is not None else None,
            "mode": getattr(data, "mode", None),
        }
    if isinstance(data, dict) and "path" in data:
        return {
            "type": data.get("type"),
            "path": _local_or_uri(str(data["path"]), base),
            "mode": data.get("mode"),
        }
    return {"literal": data}


def _local_or_uri(p: str, base: Path) -> str:
    """azure-ai-ml serializes local paths as 'azureml:./x'; keep real asset refs and URIs."""
    if p.startswith("azureml:") and not p.startswith("azureml://"):
        rest = p.removeprefix("azureml:")
        if "/" in rest or rest.startswith(".") or (base / rest).exists():
            p = rest
        else:
            return p
    if re.match(r"^[a-z][a-z0-9+.-]*://", p):
        return p
    q = Path(p)
    return str(q if q.is_absolute() else (base / q).resolve())


def _output_decl(v: Any) -> OutputDecl:
    if isinstance(v, dict):
        return {"type": v.get("type", "uri_folder"), "path": v.get("path"), "mode": v.get("mode")}
    return {"type": "uri_folder", "path": None, "mode": None}


def _binding(v: Any, base: Path) -> Binding:
    """One step input as a binding: parent input, step output, data, or literal."""
    mode = None
    if isinstance(v, dict) and isinstance(v.get("path"), str) and v["path"].startswith("${{"):
        mode = v.get("mode")
        v = v["path"]
    if isinstance(v, str):
        if m := ex.PARENT_INPUT.match(v):
            return {"parent_input": m.group(1), "mode": mode}
        if m := ex.STEP_OUTPUT.match(v):
            return {"step_output": [m.group(1), m.group(2)], "mode": mode}
        if ex.EXPR.search(v):
            return {"template": v}
        return {"literal": v}
    if isinstance(v, dict) and ("path" in v or v.get("type") in DATA_TYPES):
        return {
            "data": {
                "type": v.get("type", "uri_folder"),
                "path": _local_or_uri(str(v["path"]), base) if v.get("path") else None,
                "mode": v.get("mode"),
            }
        }
    return {"literal": v}


def item_binding(v: Any, base: Path) -> Binding:
    """A parallel_for item's value for one body input: data by path, else a literal."""
    if isinstance(v, dict) and ("path" in v or v.get("type") in DATA_TYPES):
        return _binding(v, base)
    return {"literal": v}


def make_step(
    name: str, node: dict[str, Any], base: Path, *, where: str, standalone: bool = False
) -> Step:
    kind = node.get("type", "command")
    if kind not in STEP_KINDS:
        raise InvalidInput(f"{where}: step type '{kind}' is not supported by amlocal")
    if kind in CONTROL_KINDS:
        return control_step(name, node, base, where=where)
    component = node.get("component")
    if isinstance(component, str):  # azureml:name:version, resolved at submission
        comp_ref, component = component, None
    else:
        comp_ref = None
    component = component or {}
    step: Step = {
        "name": name,
        "kind": kind,
        "display_name": node.get("display_name") or name,
        "component_ref": comp_ref,
        "component": component,
        "inputs": {k: _binding(v, base) for k, v in (node.get("inputs") or {}).items()},
        "outputs": {},
        "environment_variables": node.get("environment_variables")
        or component.get("environment_variables")
        or {},
        "limits": node.get("limits") or {},
        "compute": node.get("compute"),
        "resources": node.get("resources"),
        "spec": node,
    }
    for k, v in (node.get("outputs") or {}).items():
        if isinstance(v, str) and (m := ex.PARENT_OUTPUT.match(v)):
            step["outputs"][k] = {"parent_output": m.group(1)}
        elif (
            isinstance(v, dict)
            and isinstance(v.get("path"), str)
            and (m := ex.PARENT_OUTPUT.match(v["path"]))
        ):
            step["outputs"][k] = {"parent_output": m.group(1), "mode": v.get("mode")}
        elif v is not None:
            step["outputs"][k] = _output_decl(v)
    if kind == "command" and comp_ref is None:
        code = component.get("code")
        if code and not str(code).startswith(("azureml:", "http")):
            code_path = Path(code) if Path(code).is_absolute() else base / code
            if not code_path.exists():
                raise InvalidInput(f"{where}: code: {code_path} does not exist")
            component["code"] = str(code_path.resolve())
        _check_command(component, where)
    return step


def _check_command(component: dict[str, Any], where: str) -> None:
    """Unknown `${{inputs.x}}`/`${{outputs.y}}` in a command fail before anything runs."""
    command = component.get("command") or ""
    inputs = {k: "x" for k in component.get("inputs") or {}}
    outputs = {k: "x" for k in component.get("outputs") or {}}
    try:
        ex.render(command, inputs, outputs, where=f"{where}: command")
    except InvalidInput as exc:
        if "names no declared" in str(exc) or "unsupported expression" in str(exc):
            raise


def _check_bindings(plan: dict[str, Any], path: Path) -> None:
    """Every binding names a real pipeline input, step and output; no cycles."""
    steps = plan["steps"]
    for name, step in steps.items():
        for key, b in step["inputs"].items():
            where = f"{path}: jobs.{name}.inputs.{key}"
            if "parent_input" in b and b["parent_input"] not in plan["inputs"]:
                raise InvalidInput(f"{where}: pipeline has no input '{b['parent_input']}'")
            if "step_output" in b:
                src, out = b["step_output"]
                if src not in steps:
                    raise InvalidInput(f"{where}: binds to step '{src}', which does not exist")
                declared = steps[src]["component"].get("outputs") or {}
                if steps[src]["component"] and out not in declared:
                    raise InvalidInput(
                        f"{where}: step '{src}' has no output '{out}' "
                        f"(outputs: {', '.join(declared) or 'none'})"
                    )
        for key, o in step["outputs"].items():
            if "parent_output" in o and o["parent_output"] not in plan["outputs"]:
                raise InvalidInput(
                    f"{path}: jobs.{name}.outputs.{key}: pipeline has no output "
                    f"'{o['parent_output']}'"
                )
    order = topo_order(steps)
    if len(order) != len(steps):
        raise InvalidInput(f"{path}: the step bindings form a cycle")
    check_control(steps, set(plan["inputs"]), str(path))


def topo_order(steps: Mapping[str, Step]) -> list[str]:
    return order_of({n: dependencies(s) & steps.keys() for n, s in steps.items()})
