"""What online and batch deployments share: the model they serve and the code that scores it.

Azure resolves a deployment's model the same way for both kinds: a registered reference
(`azureml:name:version`, `azureml:name@latest`, `azureml:name@<label>`), MLflow's
`models:/name/version` and `models:/name@alias`, a bare `name:version`, or an inline model
(`model: {path: ...}`, optionally `name`, `version`, `type`) that is registered as an asset
first (anonymous when it has no name). The scoring code is the deployment's
`code_configuration`, or, for an MLflow model without one, a driver Azure generates
("no-code" deployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput

if TYPE_CHECKING:
    from amlocal.workspace import Workspace


@dataclass(frozen=True)
class ResolvedModel:
    ref: str  # as `show` prints it: azureml:<name>:<version>
    model_dir: Path  # AZUREML_MODEL_DIR


@dataclass(frozen=True)
class Scoring:
    code_dir: Path  # the snapshot the server runs in
    entry_script: str  # relative to code_dir


def load_endpoint(
    kind: str, file: Path, name: str | None, overrides: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], Any]:
    """An endpoint YAML as azure-ai-ml's entity's fields, `--name` applied: (spec, name), the
    name None when neither gives one."""
    from amlocal import loader

    entity = loader.load(kind, file, overrides)
    if name:
        entity.name = name
    return dict(entity._to_dict()), entity.name


def load(
    kind: str, file: Path, name: str | None, endpoint: str | None, overrides: list[dict[str, Any]]
) -> Any:
    """A deployment YAML as azure-ai-ml's entity, `--name` and `--endpoint-name` applied."""
    from amlocal import loader

    entity = loader.load(kind, file, overrides)
    if name:
        entity.name = name
    if endpoint:
        entity.endpoint_name = endpoint
    if not entity.endpoint_name:
        raise InvalidInput(f"{file}: no endpoint: set `endpoint_name:` or pass --endpoint-name")
    return entity


def resolve_model(ws: Workspace, model: Any, base: Path, where: str) -> ResolvedModel:
    """The deployment's model, registered if inline, as AZUREML_MODEL_DIR sees it."""
    from amlocal import assets
    from amlocal.assets.model import registered_model_files, registered_model_version
    from amlocal.assets.model_registration import register_model

    if model is None:
        raise InvalidInput(f"{where}: model: a model deployment needs a model")
    if not isinstance(model, str) and hasattr(model, "path"):  # an inline Model entity
        rec = register_model(ws, model, base, where=where, reuse_latest=True)
        name, version = rec["name"], rec["version"]
    else:
        ref = str(model).strip()
        from amlocal.registries import refs

        if refs.is_local(ref):  # a registry's model: resolved and mounted from the registry
            parsed = refs.parse(ref)
            assert parsed is not None
            if parsed.kind != "model":
                raise InvalidInput(f"{where}: model: '{ref}' is a {parsed.kind} reference")
            reg = refs.registry_of(parsed.registry, ws)
            name, version = registered_model_version(reg, parsed.local)
            files = registered_model_files(reg, name, version)
            return ResolvedModel(reg.asset_uri("model", name, version), files)
        if not ref.startswith(("azureml:", "models:/")):
            if assets.parse_ref(f"azureml:{ref}") is None:
                raise InvalidInput(
                    f"{where}: model: '{ref}' is not a model reference (azureml:<name>:"
                    f"<version>, azureml:<name>@latest, models:/<name>/<version>) or an "
                    f"inline model (path:)"
                )
            ref = f"azureml:{ref}"
        name, version = registered_model_version(ws, ref)
    return ResolvedModel(f"azureml:{name}:{version}", registered_model_files(ws, name, version))


def is_mlflow_model(model_dir: Path) -> bool:
    return (model_dir / "MLmodel").is_file() or any(model_dir.glob("*/MLmodel"))


def resolve_scoring(
    ws: Workspace,
    code_configuration: Any,
    model: ResolvedModel,
    *,
    has_environment: bool,
    base: Path,
    where: str,
    mlflow_driver: Path,
    script_needs_environment: bool = False,
) -> Scoring:
    """The scoring script (snapshotted, as Azure uploads it at create), or the MLflow
    no-code driver (`mlflow_driver`, a script in a folder of its own) when there is no
    code_configuration."""
    cc = code_configuration
    if cc is not None and getattr(cc, "code", None):
        code = Path(str(cc.code))
        code = (code if code.is_absolute() else base / code).resolve()
        script = str(cc.scoring_script or "")
        if not script or not (code / script).is_file():
            raise InvalidInput(f"{where}: code_configuration: {code / script} not found")
        if script_needs_environment and not has_environment:
            raise InvalidInput(f"{where}: a deployment with a scoring script needs an environment")
        return Scoring(snapshot(ws, code), script)
    if not is_mlflow_model(model.model_dir):
        raise InvalidInput(
            f"{where}: a deployment without code_configuration needs an MLflow model "
            f"(type: mlflow_model); {model.ref} has no MLmodel file"
        )
    if has_environment:
        raise InvalidInput(f"{where}: an environment needs code_configuration (and back)")
    return Scoring(snapshot(ws, mlflow_driver.parent), mlflow_driver.name)


def snapshot(ws: Workspace, code: Path) -> Path:
    """Copy code into the workspace, as Azure uploads it: later edits to the working tree
    never change a deployment."""
    from amlocal.assets.code import code_snapshot

    return code_snapshot(ws, code)[1]


# Fields Azure computes; a stored deployment given back to the loader leaves them out.
_COMPUTED = ("id", "provisioning_state", "scoring_uri", "openapi_uri")


def spec_of(record: dict[str, Any], schema: str | None) -> dict[str, Any]:
    """A stored deployment as the YAML that would create it again (update without --file)."""
    import copy

    spec = {"$schema": schema} if schema else {}
    spec.update(
        {
            k: copy.deepcopy(v)
            for k, v in record.items()
            if not k.startswith("_") and k not in _COMPUTED
        }
    )
    if spec.get("environment") is None:
        spec.pop("environment", None)
    return spec


def apply_sets(record: dict[str, Any], overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """`--set a.b=c` on a stored record (update without a file)."""
    for item in overrides:
        for key, value in item.items():
            node = record
            parts = key.split(".")
            for p in parts[:-1]:
                nxt = node.get(p)
                if not isinstance(nxt, dict):
                    nxt = node[p] = {}
                node = nxt
            node[parts[-1]] = value
    return record


def curated_environment(ref: Any, where: str) -> dict[str, Any] | None:
    """A curated environment reference (`azureml:AzureML-<name>:<v>|@latest`,
    `azureml://registries/azureml/environments/<name>/labels/latest|versions/<n>`) as an
    environment record with Azure's published specification; None when `ref` is not one.
    An unknown curated name is an error, as Azure rejects it at create."""
    if not isinstance(ref, str):
        return None
    from amlocal.environments import curated

    parsed = curated.parse(ref)
    if parsed is None:
        return None
    try:
        spec = curated.lookup(ref)
    except curated.UnknownCuratedEnvironment as exc:
        raise InvalidInput(f"{where}: environment: {exc}") from None
    assert spec is not None
    return {
        "name": f"AzureML-{spec.name}",
        "version": parsed.version or parsed.label or "latest",
        "conda_file": spec.conda_file(),
        "curated": ref,
    }


def warn_curated(env: dict[str, Any]) -> None:
    """One line: offline a curated environment's scoring runs in this project's venv."""
    import sys

    sys.stderr.write(
        f"amlocal: curated environment {env['curated']} is served with this project's Python "
        f"({sys.version_info.major}.{sys.version_info.minor}) and packages\n"
    )
