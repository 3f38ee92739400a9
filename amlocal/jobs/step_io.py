"""A step's inputs and outputs: bound inputs and output declarations to values, local paths
and reuse identity (`resolve_io`), and a command step's resolved form (`resolve`). Its
process is `amlocal.jobs.process`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal import assets
from amlocal.assets.data import output_path, resolve_path
from amlocal.assets.model import model_dir
from amlocal.errors import InvalidInput
from amlocal.hashing import tree_digest
from amlocal.jobs import expressions as ex
from amlocal.jobs import reuse, reuse_why
from amlocal.jobs.plan import DATA_TYPES
from amlocal.snapshot import snapshot_digest, snapshot_digest_includes
from amlocal.workspace import DEFAULT_DATASTORE, Workspace

if TYPE_CHECKING:
    from amlocal.jobs.types import Binding, OutputDecl, Outputs, Step

LOG_NAME = "user_logs/std_log.txt"
MODEL_TYPES = {"mlflow_model", "custom_model", "triton_model"}


def coerce(value: Any, decl: dict[str, Any] | None) -> Any:
    """Literal inputs take their declared type (YAML and --set give strings and ints)."""
    typ = (decl or {}).get("type")
    if value is None:
        return None
    try:
        if typ == "boolean":
            if isinstance(value, str):
                return value.strip().lower() in ("true", "1", "yes")
            return bool(value)
        if typ == "integer":
            return int(float(value)) if isinstance(value, str) else int(value)
        if typ == "number":
            return float(value)
        if typ == "string":
            return str(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"input value {value!r} is not a valid {typ}") from None
    return value


def output_location(
    ws: Workspace, job_name: str, out_name: str, decl: dict[str, Any], datastore: str
) -> tuple[Path, str]:
    """(local path, azureml URI) of an output: its `path` with `${{name}}`,
    `${{output_name}}`, `${{default_datastore}}` resolved, or Azure ML's default location
    `<datastore>/azureml/<job-name>/<output-name>/`."""
    path = decl.get("path")
    if path:
        uri = ex.substitute_path(
            str(path), {"name": job_name, "output_name": out_name, "default_datastore": datastore}
        )
        return output_path(ws, uri, f"output '{out_name}'"), uri
    uri = f"azureml://datastores/{datastore}/paths/azureml/{job_name}/{out_name}/"
    return ws.datastore_dir(datastore) / "azureml" / job_name / out_name, uri


def data_input(
    ws: Workspace, job_name: str, name: str, data: dict[str, Any], base: Path, digest: bool = True
) -> tuple[Any, dict[str, Any], str | None]:
    """(value for the command, record metadata, content digest) of one data input."""
    uri = data.get("path")
    if not uri:
        raise InvalidInput(f"input '{name}' has no path")
    mode = data.get("mode") or "ro_mount"
    if data.get("type") in MODEL_TYPES and assets.parse_ref(str(uri)) is not None:
        local: Path | None = model_dir(ws, str(uri), base)  # a registered model
    else:
        local = resolve_path(ws, uri, base)
    if local is None:
        raise InvalidInput(
            f"input '{name}': {uri} is not reachable offline (only local paths, "
            f"azureml:// datastore paths and registered data assets are)"
        )
    if not local.exists():
        raise InvalidInput(f"input '{name}': data path {local} does not exist")
    content = tree_digest(local, store=ws.store) if digest else None
    meta = {
        "type": data.get("type", "uri_folder"),
        "path": uri,
        "mode": mode,
        "local_path": str(local),
    }
    if mode == "direct":
        return uri, meta, content
    if mode == "download":
        dest = ws.job_dir(job_name) / "inputs" / name / local.name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if local.is_dir() else shutil.copy2)(local, dest)
        return str(dest), meta, content
    return str(local), meta, content


@dataclass
class IO:
    """A step's inputs and outputs resolved to values and local paths."""

    input_values: dict[str, Any]  # what ${{inputs.x}} renders to (None: no value)
    input_meta: dict[str, Any]  # shown in job records
    input_identity: dict[str, Any]  # literals and data digests, for reuse
    outputs: Outputs  # name -> {type, mode, local_path, uri}
    output_identity: dict[str, Any]


@dataclass
class Resolved:
    """A command step with every binding turned into values and paths."""

    job_name: str
    component: dict[str, Any]
    io: IO
    code: Path | None
    env: dict[str, Any]
    environment_variables: dict[str, str]
    timeout: float | None
    command: str = ""
    fingerprint: str = ""
    includes: list[str] = field(default_factory=list)  # additional_includes, absolute
    warnings: list[str] = field(default_factory=list)

    @property
    def outputs(self) -> Outputs:
        return self.io.outputs

    @property
    def input_values(self) -> dict[str, Any]:
        return self.io.input_values


def resolve_io(
    ws: Workspace,
    job_name: str,
    step: Step,
    bound: Mapping[str, Binding],
    out_targets: Mapping[str, OutputDecl],
    *,
    base: Path,
    datastore: str = DEFAULT_DATASTORE,
    component: dict[str, Any] | None = None,
    digest_data: bool = True,
) -> IO:
    """Resolve inputs and outputs for any step kind, given its bound inputs (already
    evaluated in the parent context): `bound` maps input name -> {"literal": v} |
    {"data": {...}} | {"upstream": {local_path, uri, type}}; `out_targets` maps output name
    -> declaration. `component` defaults to step["component"] (a sweep passes its trial).
    `digest_data=False` skips hashing data content, for jobs that are never reused."""
    component = component if component is not None else step["component"]
    decls = component.get("inputs") or {}
    values: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    identity: dict[str, Any] = {}
    for name, decl in decls.items():
        b = bound.get(name)
        if b is None:
            default = decl.get("default")
            values[name] = coerce(default, decl) if default is not None else None
            identity[name] = values[name]
            if values[name] is None and not decl.get("optional"):
                kind = "data input" if decl.get("type") in DATA_TYPES else "input"
                raise InvalidInput(f"step '{step['name']}': required {kind} '{name}' has no value")
            continue
        if "literal" in b:
            values[name] = coerce(b["literal"], decl)
            identity[name] = values[name]
            meta[name] = values[name]
        elif "data" in b:
            data = {**b["data"], "mode": b["data"].get("mode") or decl.get("mode")}
            v, m, digest = data_input(ws, job_name, name, data, base, digest_data)
            values[name], meta[name], identity[name] = v, m, {"digest": digest, "mode": m["mode"]}
        elif "upstream" in b:
            up = b["upstream"]
            local = Path(up["local_path"])
            if not local.exists():
                raise InvalidInput(
                    f"step '{step['name']}': input '{name}' expects {local}, "
                    f"which the upstream step did not write"
                )
            values[name] = str(local)
            meta[name] = {"type": up.get("type"), "path": up.get("uri"), "local_path": str(local)}
            identity[name] = {"digest": tree_digest(local, store=ws.store) if digest_data else None}
    for name in bound:
        if name not in decls:
            raise InvalidInput(
                f"step '{step['name']}': input '{name}' is not declared by its component"
            )
    outputs: Outputs = {}
    out_identity: dict[str, Any] = {}
    for name, decl in (component.get("outputs") or {}).items():
        chosen = {k: v for k, v in (out_targets.get(name) or {}).items() if v is not None}
        target = {**decl, **chosen}
        local, uri = output_location(ws, job_name, name, target, datastore)
        outputs[name] = {
            "type": target.get("type", "uri_folder"),
            "mode": target.get("mode") or "rw_mount",
            "local_path": str(local),
            "uri": uri,
        }
        out_identity[name] = {
            "type": outputs[name]["type"],
            "mode": target.get("mode"),
            "path": target.get("path"),
        }
    return IO(values, meta, identity, outputs, out_identity)


def resolve(
    ws: Workspace, job_name: str, step: Step, io: IO, env: dict[str, Any], env_identity: str
) -> Resolved:
    """A command step from its resolved I/O (`resolve_io`): the rendered command and the
    reuse fingerprint (`env_identity`: StepContext.environment_identity)."""
    component = step["component"]
    code = component.get("code")
    code_path = Path(code) if code else None
    limits = step.get("limits") or {}
    timeout = limits.get("timeout")
    r = Resolved(
        job_name=job_name,
        component=component,
        io=io,
        code=code_path,
        env=env,
        environment_variables={
            str(k): str(v) for k, v in (step.get("environment_variables") or {}).items()
        },
        timeout=float(timeout) if timeout else None,
    )
    r.command = ex.render(
        component.get("command") or "",
        io.input_values,
        {k: v["local_path"] for k, v in io.outputs.items()},
        where=f"step '{step['name']}': command",
    )
    r.includes = [str(p) for p in component.get("additional_includes") or []]
    code_digest = (
        snapshot_digest(code_path, ws.store, r.includes)
        if code_path
        else snapshot_digest_includes(r.includes, ws.store)
    )
    run_settings = {
        "environment_variables": r.environment_variables,
        "limits": limits,
        "resources": step.get("resources"),
    }
    r.fingerprint = reuse.fingerprint(
        component, code_digest, env_identity, io.input_identity, io.output_identity, run_settings
    )
    reuse_why.note(
        r.fingerprint,
        component,
        code_path,
        r.includes,
        env_identity,
        io.input_identity,
        io.output_identity,
        run_settings,
    )
    return r
