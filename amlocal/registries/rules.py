"""What a registry accepts, with Azure's rules ("Share models, components, and environments
across workspaces with registries"): only named assets; a reference from a registry asset
must be to an asset in the registry ("If you to reference an asset in a registry, you need to
create it in the registry first"); versions are immutable (an existing name and version is
refused, even with the same content: "an environment with this name and version already
exists in the registry"). Creating goes through the workspace asset code, on the registry.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.registries import SYSTEM_REGISTRY, Registry
from amlocal.registries.refs import parse

NAMED_ONLY = (
    "registries only support named assets (data, model, component, environment): "
    "to reference an asset from a registry, create it in the registry first"
)


def exists(reg: Registry, kind: str, name: str, version: str) -> bool:
    if kind == "model":  # Azure's versions, whatever MLflow numbers they ride on
        from amlocal.assets.model_versions import version_map

        return version in version_map(reg, name)
    return version in reg.store.versions(kind, name)


def refuse_existing(reg: Registry, kind: str, name: str, version: str | None, where: str) -> None:
    if version is not None and exists(reg, kind, name, str(version)):
        raise InvalidInput(
            f"{where}: {kind} {name}:{version} already exists in registry '{reg.name}'; "
            f"registry assets are immutable: use another version (--version, or "
            f"--set version=N)"
        )


def _environment_rule(reg: Registry, env: Any, where: str) -> None:
    """A registry component's environment: a named environment of this registry (or of
    Microsoft's system registry), never an inline one or a workspace's."""
    if env is None:
        return
    if not isinstance(env, str):
        raise InvalidInput(
            f"{where}: environment: an anonymous (inline) environment cannot be used in a "
            f"registry; {NAMED_ONLY} (azureml://registries/{reg.name}/environments/<name>/"
            f"versions/<version>)"
        )
    parsed = parse(env)
    if parsed is None or parsed.registry not in (reg.name, SYSTEM_REGISTRY):
        raise InvalidInput(
            f"{where}: environment: '{env}' is not in registry '{reg.name}'; {NAMED_ONLY} "
            f"(azureml://registries/{reg.name}/environments/<name>/versions/<version>)"
        )
    if parsed.registry == reg.name:
        from amlocal import assets

        try:
            assets.get(reg, "environment", parsed.local)
        except Exception as exc:
            raise InvalidInput(
                f"{where}: environment: {env}: {exc}; create it in the registry first "
                f"(`amlocal environment create -f <env.yml> --registry-name {reg.name}`)"
            ) from None


def check_create(reg: Registry, kind: str, file: Path, overrides: list[dict[str, Any]]) -> None:
    """Refuse, before anything is written, what the registry would refuse."""
    from amlocal import loader

    entity = loader.load(kind, file, overrides)
    where = str(file)
    name = getattr(entity, "name", None)
    if not name:
        raise InvalidInput(f"{where}: name: {NAMED_ONLY}")
    version = getattr(entity, "version", None)
    refuse_existing(reg, kind, str(name), None if version in (None, "") else str(version), where)
    if kind == "component":
        # azure-ai-ml keeps a reference as a string; an inline mapping becomes an Environment
        _environment_rule(reg, entity.environment, where)
        code = getattr(entity, "code", None)
        if isinstance(code, str) and code.startswith("azureml:") and parse(code) is None:
            raise InvalidInput(
                f"{where}: code: '{code}' is a workspace code asset; a registry component's "
                f"code is uploaded with it (give a local folder)"
            )
    if kind in ("data", "model"):
        path = str(getattr(entity, "path", "") or "")
        if path.startswith(("azureml://jobs/", "azureml://datastores/", "azureml:")):
            raise InvalidInput(
                f"{where}: path: '{path}' is in a workspace; create a registry {kind} from "
                f"local files, or share the workspace's {kind}: `amlocal {kind} share --name "
                f"<name> --version <version> --registry-name {reg.name}`"
            )


def create(reg: Registry, kind: str, file: Path, overrides: list[dict[str, Any]]) -> Any:
    """`<kind> create --registry-name R`: the registry's rules, then the workspace's create
    on the registry's storage; the result names the asset as Azure does."""
    from amlocal.assets.component import create_component
    from amlocal.assets.data import create_data
    from amlocal.assets.environment import create_environment
    from amlocal.assets.model_registration import create_model

    creators = {
        "data": create_data,
        "environment": create_environment,
        "component": create_component,
        "model": create_model,
    }
    check_create(reg, kind, file, overrides)
    out = creators[kind](reg, file, overrides)
    return shown(reg, kind, out)


def shown(reg: Registry, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if out.get("name") and out.get("version"):
        out["id"] = reg.asset_uri(kind, str(out["name"]), str(out["version"]))
    return out


@contextlib.contextmanager
def _spec(doc: dict[str, Any], kind: str) -> Any:
    """A YAML file holding `doc` (what a share creates in the registry), removed after."""
    import yaml

    from amlocal import assets

    with tempfile.TemporaryDirectory(prefix=assets.FLAGS_DIR_PREFIX) as tmp:
        spec = Path(tmp) / f"{kind}.yml"
        spec.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield spec
