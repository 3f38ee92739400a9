"""Registry references, as jobs, pipelines and deployments write them:
`azureml://registries/<registry>/{models,components,environments,data}/<name>/versions/<v>`,
`.../<name>/labels/<label>` and `.../<name>@<label>` (`latest`; a model's label is an alias).

`target(ws, kind, ref)` turns one into (the registry, `azureml:<name>:<v>|@<label>`), so every
resolver that takes a workspace and a workspace reference resolves a registry's asset with
the same code. Microsoft's system registry `azureml` is not a local registry: its curated
environments are amlocal.environments.curated, and `target` leaves its references alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from amlocal.errors import InvalidInput

if TYPE_CHECKING:
    from amlocal.registries import Registry
    from amlocal.workspace import Workspace

PREFIX = "azureml://registries/"
_KINDS = {"models": "model", "components": "component", "environments": "environment"}
_KINDS["data"] = "data"
_REF = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/(?P<plural>[a-z]+)/(?P<name>[^/@]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+)|@(?P<at>[^/]+))?/?$"
)


@dataclass(frozen=True)
class RegistryRef:
    registry: str
    kind: str
    name: str
    version: str | None
    label: str | None

    @property
    def local(self) -> str:
        """The same asset as a reference inside the registry (`azureml:n:v` / `azureml:n@l`)."""
        if self.version:
            return f"azureml:{self.name}:{self.version}"
        return f"azureml:{self.name}@{self.label or 'latest'}"


def parse(ref: object) -> RegistryRef | None:
    """A registry reference's parts; None for anything else. A malformed one (unknown asset
    kind, e.g. the singular `/component/`) is refused naming the four kinds."""
    if not isinstance(ref, str) or not ref.startswith(PREFIX):
        return None
    m = _REF.match(ref.strip())
    if m is None or m["plural"] not in _KINDS:
        raise InvalidInput(
            f"'{ref}' is not a registry reference: expected azureml://registries/<registry>/"
            f"{{models,components,environments,data}}/<name>/versions/<version> "
            f"(or .../labels/latest)"
        )
    return RegistryRef(
        m["registry"], _KINDS[m["plural"]], m["name"], m["version"], m["label"] or m["at"]
    )


def is_local(ref: object) -> bool:
    """A reference to a registry of this home (not Microsoft's system registry)."""
    if not isinstance(ref, str) or not ref.startswith(PREFIX):
        return False
    parsed = parse(ref)
    from amlocal.registries import SYSTEM_REGISTRY

    return parsed is not None and parsed.registry != SYSTEM_REGISTRY


def target(ws: Workspace, kind: str, ref: str) -> tuple[Workspace, str]:
    """(where to resolve, what to resolve there): `ref` in `ws` unless it names a registry of
    this home; a registry reference of another asset kind is refused naming both kinds."""
    if not is_local(ref):
        return ws, ref
    parsed = parse(ref)
    assert parsed is not None
    if parsed.kind != kind:
        raise InvalidInput(f"'{ref}' is a {parsed.kind} reference, where a {kind} is expected")
    return registry_of(parsed.registry, ws), parsed.local


def registry_of(name: str, ws: Workspace | None = None) -> Registry:
    """The registry `name` of the home `ws` belongs to (of AMLOCAL_HOME's without `ws`)."""
    from amlocal import registries

    return registries.get(name, ws.root if ws is not None else None)


def resolved_uri(reg: Registry, kind: str, name: str, version: str) -> str:
    """The pinned reference shown in records (a label resolved to its version)."""
    return reg.asset_uri(kind, name, version)
