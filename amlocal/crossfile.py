"""Checks that span files, which azure-ai-ml's per-file validation does not make.

`_validate()` accepts `${{parent.jobs.prepx.outputs.data}}` (a typo), a deployment whose
`endpoint_name` names another endpoint, traffic summing to 90, or a conda file whose pins
drifted from the venv the tests ran in. Azure ML rejects (or, for pins, silently diverges on)
each of these only after an upload and a queue; here they fail in a second.

Works on the raw YAML (dicts), so a problem names the exact key a person has to edit.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from amlocal import yamlsafe
from amlocal.yamldocs import DEFAULT_DIRS, Doc, Problem, discover, read_docs

# -- pipeline bindings -----------------------------------------------------------------------
BINDING = re.compile(
    r"^\$\{\{\s*parent\.(inputs|outputs|jobs)\.([\w-]+)(?:\.(\w+)\.([\w-]+))?\s*\}\}$"
)
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# Literal pipeline inputs (`alpha: 1.0`) have the type azure-ai-ml infers for them.
LITERAL_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass
class Interface:
    """What a step declares: input name -> (type, required), output name -> type."""

    inputs: dict[str, tuple[str | None, bool]]
    outputs: dict[str, str | None]
    known: bool  # False for registry components (`azureml:...`): nothing to check against


def _port_type(spec: Any) -> str | None:
    return spec.get("type") if isinstance(spec, dict) else None


def _component_interface(spec: dict[str, Any]) -> Interface:
    inputs = {}
    for name, port in (spec.get("inputs") or {}).items():
        port = port if isinstance(port, dict) else {}
        required = not port.get("optional", False) and "default" not in port
        inputs[name] = (port.get("type"), required)
    outputs = {name: _port_type(port) for name, port in (spec.get("outputs") or {}).items()}
    return Interface(inputs, outputs, known=True)


def _literal_type(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type")
    return LITERAL_TYPES.get(type(value))


def _compatible(source: str | None, target: str | None) -> bool:
    """Source type may feed target type. Unknown types are not judged; an integer literal
    may feed a number input (azure-ai-ml converts it), nothing else is converted."""
    if source is None or target is None or source == target:
        return True
    return (source, target) == ("integer", "number")


def check_pipeline(doc: Doc) -> Iterator[Problem]:
    """Component paths, bindings, names and types of a pipeline job or pipeline component."""
    raw, path = doc.raw, doc.path
    jobs = raw.get("jobs") or {}
    parent_inputs = raw.get("inputs") or {}
    parent_outputs = raw.get("outputs") or {}
    interfaces: dict[str, Interface] = {}
    for step, body in jobs.items():
        body = body or {}
        component = body.get("component")
        key = f"jobs.{step}.component"
        if isinstance(component, str) and not component.startswith("azureml:"):
            target = (path.parent / component).resolve()
            if not target.is_file():
                yield Problem(path, key, f"{component} does not exist")
                interfaces[step] = Interface({}, {}, known=False)
                continue
            spec = yamlsafe.load_file(target) or {}
            interfaces[step] = _component_interface(spec)
        elif isinstance(component, dict):
            interfaces[step] = _component_interface(component)
        elif component is None and "command" in body:  # inline command job
            outputs = {name: _port_type(v) for name, v in (body.get("outputs") or {}).items()}
            interfaces[step] = Interface({}, outputs, known=False)
        else:
            interfaces[step] = Interface({}, {}, known=False)

    for step, body in jobs.items():
        body = body or {}
        iface = interfaces[step]
        bound = body.get("inputs") or {}
        for name, value in bound.items():
            key = f"jobs.{step}.inputs.{name}"
            if iface.known and name not in iface.inputs:
                yield Problem(path, key, f"the component has no input {name!r}")
                continue
            target_type = iface.inputs.get(name, (None, False))[0]
            binding = value.get("path") if isinstance(value, dict) else value
            if not isinstance(binding, str) or "${{" not in binding:
                continue
            match = BINDING.match(binding)
            if match is None:
                yield Problem(path, key, f"{binding!r} is not a ${{{{parent.…}}}} binding")
                continue
            scope, ref, sub, port = match.groups()
            if scope == "inputs" and sub is None:
                if ref not in parent_inputs:
                    yield Problem(path, key, f"binds parent input {ref!r}, which is not declared")
                elif not _compatible(_literal_type(parent_inputs[ref]), target_type):
                    yield Problem(
                        path,
                        key,
                        f"type mismatch: parent input {ref!r} is "
                        f"{_literal_type(parent_inputs[ref])}, the component input is {target_type}",
                    )
            elif scope == "jobs" and sub == "outputs":
                if ref not in jobs:
                    yield Problem(path, key, f"binds step {ref!r}, which is not in jobs")
                elif ref == step:
                    yield Problem(path, key, "a step cannot consume its own output")
                elif interfaces[ref].known and port not in interfaces[ref].outputs:
                    outs = ", ".join(interfaces[ref].outputs) or "none"
                    yield Problem(path, key, f"step {ref!r} has no output {port!r} (has: {outs})")
                elif not _compatible(interfaces[ref].outputs.get(port), target_type):
                    yield Problem(
                        path,
                        key,
                        f"type mismatch: {ref}.outputs.{port} is "
                        f"{interfaces[ref].outputs.get(port)}, the component input is {target_type}",
                    )
            else:
                yield Problem(path, key, f"{binding!r}: inputs bind parent inputs or step outputs")
        if iface.known:
            for name, (_, required) in iface.inputs.items():
                if required and name not in bound:
                    yield Problem(path, f"jobs.{step}.inputs", f"required input {name!r} not bound")
        for name, value in (body.get("outputs") or {}).items():
            key = f"jobs.{step}.outputs.{name}"
            if iface.known and name not in iface.outputs:
                yield Problem(path, key, f"the component has no output {name!r}")
                continue
            binding = value.get("path") if isinstance(value, dict) else value
            if not isinstance(binding, str) or "${{" not in binding:
                continue
            match = BINDING.match(binding)
            if match is None or match.group(1) != "outputs" or match.group(3) is not None:
                yield Problem(
                    path, key, f"{binding!r}: outputs bind ${{{{parent.outputs.<name>}}}}"
                )
            elif match.group(2) not in parent_outputs:
                yield Problem(path, key, f"binds parent output {match.group(2)!r}, not declared")
            else:
                declared = _port_type(parent_outputs[match.group(2)])
                if not _compatible(iface.outputs.get(name), declared):
                    yield Problem(
                        path,
                        key,
                        f"type mismatch: the component output is {iface.outputs.get(name)}, "
                        f"parent output {match.group(2)!r} is {declared}",
                    )


# -- endpoints and deployments ---------------------------------------------------------------
FAMILY = {
    "online-endpoint": "online",
    "online-deployment": "online",
    "batch-endpoint": "batch",
    "batch-deployment": "batch",
}


def _siblings(directory: Path, kind: str, cache: dict[Path, list[Doc]]) -> list[Doc]:
    """Azure ML docs of one kind in a folder (read from disk, so a single-file run still
    sees the endpoint beside a deployment)."""
    if directory not in cache:
        files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
        cache[directory] = read_docs(files)[0]
    return [d for d in cache[directory] if d.kind == kind]


def check_deployment(doc: Doc, cache: dict[Path, list[Doc]]) -> Iterator[Problem]:
    """`endpoint_name` names the endpoint defined beside the deployment."""
    family = FAMILY[doc.kind]
    endpoints = _siblings(doc.path.parent, f"{family}-endpoint", cache)
    name = doc.raw.get("endpoint_name")
    if not name:
        yield Problem(doc.path, "endpoint_name", "missing (`az ml` needs it or --endpoint-name)")
    elif not endpoints:
        yield Problem(
            doc.path,
            "endpoint_name",
            f"no {family} endpoint YAML beside this deployment to check {name!r} against",
            "warning",
        )
    elif name not in {e.raw.get("name") for e in endpoints}:
        names = ", ".join(f"{e.path.name} names {e.raw.get('name')!r}" for e in endpoints)
        yield Problem(doc.path, "endpoint_name", f"{name!r} does not match the endpoint ({names})")


def check_endpoint(doc: Doc, cache: dict[Path, list[Doc]]) -> Iterator[Problem]:
    """Traffic sums to 0 or 100 over deployments that exist; mirror traffic within limits."""
    family = FAMILY[doc.kind]
    name = doc.raw.get("name")
    deployments = {
        d.raw.get("name")
        for d in _siblings(doc.path.parent, f"{family}-deployment", cache)
        if d.raw.get("endpoint_name") == name
    }
    traffic = doc.raw.get("traffic") or {}
    mirror = doc.raw.get("mirror_traffic") or {}
    for key, table in (("traffic", traffic), ("mirror_traffic", mirror)):
        for dep, pct in table.items():
            if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 100:
                yield Problem(doc.path, f"{key}.{dep}", f"{pct!r} is not a percentage 0..100")
            elif dep not in deployments:
                known = ", ".join(sorted(map(str, deployments))) or "none"
                yield Problem(
                    doc.path, f"{key}.{dep}", f"no deployment {dep!r} of {name!r} here ({known})"
                )
    total = sum(v for v in traffic.values() if isinstance(v, int))
    if traffic and total not in (0, 100):
        yield Problem(doc.path, "traffic", f"sums to {total}; Azure ML requires 0 or 100")
    if sum(v for v in mirror.values() if isinstance(v, int)) > 50:
        yield Problem(doc.path, "mirror_traffic", "Azure ML mirrors at most 50% of traffic")
    for dep in set(mirror) & {d for d, v in traffic.items() if v}:
        yield Problem(doc.path, f"mirror_traffic.{dep}", "a deployment with live traffic")
    default = (doc.raw.get("defaults") or {}).get("deployment_name")
    if default and default not in deployments:
        yield Problem(doc.path, "defaults.deployment_name", f"no deployment {default!r} here")


# -- environment pins --------------------------------------------------------------------------
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*$")


def normalize(name: str) -> str:
    """PEP 503 names, so `scikit_learn` and `Scikit-Learn` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins(pyproject: Path) -> dict[str, str]:
    """Exact `name==version` pins of [project] dependencies and optional dependencies."""
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    pins = {}
    for spec in specs:
        match = PIN.match(spec)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def conda_pin_problems(conda: Path, pins: dict[str, str]) -> list[str]:
    """How a conda file's pip section disagrees with pyproject.toml (empty: it agrees)."""
    try:
        deps = (yamlsafe.load_file(conda) or {}).get("dependencies") or []
    except (OSError, yaml.YAMLError) as exc:
        return [f"cannot read {conda.name}: {exc}"]
    problems = []
    for dep in deps:
        for spec in dep.get("pip", []) if isinstance(dep, dict) else []:
            match = PIN.match(str(spec))
            if match is None:
                problems.append(f"{conda.name}: {spec!r} is not an exact name==version pin")
                continue
            name, version = normalize(match.group(1)), match.group(2)
            if name not in pins:
                problems.append(f"{conda.name}: {name} is not pinned in pyproject.toml")
            elif pins[name] != version:
                problems.append(
                    f"{conda.name}: {name}=={version} but pyproject.toml has =={pins[name]}"
                )
    return problems


def conda_files(doc: Doc) -> Iterator[tuple[str, Path]]:
    """(key, path) of every local conda file the doc references, inline envs included."""
    raw = doc.raw
    if doc.kind == "environment" and isinstance(raw.get("conda_file"), str):
        yield "conda_file", doc.path.parent / raw["conda_file"]
    env = raw.get("environment")
    if isinstance(env, dict) and isinstance(env.get("conda_file"), str):
        yield "environment.conda_file", doc.path.parent / env["conda_file"]


def check_pins(doc: Doc, pins: dict[str, str] | None) -> Iterator[Problem]:
    for key, conda in conda_files(doc):
        if not conda.is_file():
            yield Problem(doc.path, key, f"{conda} does not exist")
        elif pins is not None:
            for message in conda_pin_problems(conda, pins):
                yield Problem(doc.path, key, message)


# -- asset references ----------------------------------------------------------------------------
ASSET_REF = re.compile(r"^azureml:(?!/)([\w.-]+?)(?:([:@])([\w.-]+))?$")


def asset_refs(doc: Doc) -> Iterator[tuple[str, str, str]]:
    """(key, asset kind, reference) for environments, data and computes the doc uses."""
    raw = doc.raw
    for key, kind in (("environment", "environment"), ("compute", "compute")):
        if isinstance(raw.get(key), str):
            yield key, kind, raw[key]
    default_compute = (raw.get("settings") or {}).get("default_compute")
    if isinstance(default_compute, str):
        yield "settings.default_compute", "compute", default_compute
    for name, value in (raw.get("inputs") or {}).items():
        if doc.kind == "job" and isinstance(value, dict) and isinstance(value.get("path"), str):
            kind = "model" if str(value.get("type", "")).endswith("_model") else "data"
            yield f"inputs.{name}.path", kind, value["path"]
    for step, body in (raw.get("jobs") or {}).items():
        for key, kind in (("environment", "environment"), ("compute", "compute")):
            if isinstance((body or {}).get(key), str):
                yield f"jobs.{step}.{key}", kind, body[key]


def check_refs(doc: Doc, index: dict[str, dict[str, set[str]]]) -> Iterator[Problem]:
    """Warn when an `azureml:` environment, data or compute is defined by no YAML here:
    `az ml` would need it created some other way (or the name has a typo)."""
    for key, kind, ref in asset_refs(doc):
        match = ASSET_REF.match(ref)
        if match is None:
            continue
        name, separator, version = match.groups()
        if kind not in index:
            continue
        if name not in index[kind]:
            yield Problem(doc.path, key, f"no {kind} YAML here defines {name!r}", "warning")
        elif separator == ":" and index[kind][name] and version not in index[kind][name]:
            have = ", ".join(sorted(index[kind][name]))
            yield Problem(
                doc.path, key, f"{kind} {name!r} version {version} is not defined here ({have})"
            )


def asset_index(docs: list[Doc]) -> dict[str, dict[str, set[str]]]:
    """kind -> name -> versions defined by the YAML files."""
    index: dict[str, dict[str, set[str]]] = {}
    for doc in docs:
        if doc.kind in ("environment", "data", "compute") and doc.raw.get("name"):
            versions = index.setdefault(doc.kind, {}).setdefault(str(doc.raw["name"]), set())
            if doc.raw.get("version") is not None:
                versions.add(str(doc.raw["version"]))
    return index


# -- all together ------------------------------------------------------------------------------
def find_pyproject(root: Path) -> Path | None:
    for folder in (root, *root.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def cross_check(docs: list[Doc], root: Path, everything: list[Doc] | None = None) -> list[Problem]:
    """Every cross-file problem among `docs`; `everything` (default: docs plus the default
    folders under root) is what asset references may resolve to."""
    pyproject = find_pyproject(root)
    pins = pyproject_pins(pyproject) if pyproject else None
    if everything is None:
        everything = list(docs) + _default_docs(root, {d.path.resolve() for d in docs})
    index = asset_index(everything)
    cache: dict[Path, list[Doc]] = {}
    problems: list[Problem] = []
    for doc in docs:
        if doc.kind == "job" and doc.schema == "pipelineJob" or doc.schema == "pipelineComponent":
            problems.extend(check_pipeline(doc))
        if doc.kind in ("online-deployment", "batch-deployment"):
            problems.extend(check_deployment(doc, cache))
        if doc.kind in ("online-endpoint", "batch-endpoint"):
            problems.extend(check_endpoint(doc, cache))
        problems.extend(check_pins(doc, pins))
        problems.extend(check_refs(doc, index))
    return problems


def _default_docs(root: Path, seen: set[Path]) -> list[Doc]:
    files = [
        f
        for f in discover([root / d for d in DEFAULT_DIRS if (root / d).is_dir()])
        if f.resolve() not in seen
    ]
    return read_docs(files)[0]
