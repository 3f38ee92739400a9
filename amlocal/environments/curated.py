"""Curated environment references (`azureml:AzureML-<name>@latest` / `:<version>` and
`azureml://registries/azureml/environments/<name>/labels/latest` / `/versions/<n>`) resolved
to the specification Azure publishes for them (`curated_table.CURATED`).

Every version of a curated environment resolves to the one specification in the table: Azure
rebuilds them for security fixes, with the same package specifiers. Its unpinned packages
resolve as of the row's release date (`CuratedEnvironment.built`), as Azure's build did.
Legacy names with an OS and Python suffix (`sklearn-1.0-ubuntu20.04-py38-cpu`) resolve to the
same family's row with the suffix's Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from amlocal.environments.curated_table import CURATED

_WORKSPACE = re.compile(
    r"^azureml:(?i:azureml-)(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*?)(?:@(?P<label>[A-Za-z0-9._-]+)|:(?P<version>[A-Za-z0-9._-]+))?$"
)
_REGISTRY = re.compile(
    r"^azureml://registries/azureml/environments/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:/labels/(?P<label>[A-Za-z0-9._-]+)|/versions/(?P<version>[A-Za-z0-9._-]+))?/?$"
)
_LEGACY = re.compile(r"^(?P<family>.+?)-ubuntu\d+\.\d+-py(?P<major>\d)(?P<minor>\d+)-(?:cpu|gpu)$")


@dataclass(frozen=True)
class CuratedReference:
    """A reference in one of the two curated forms: the environment's name and its version or
    label (`latest` when neither is given)."""

    reference: str
    name: str
    version: str | None
    label: str | None


@dataclass(frozen=True)
class CuratedEnvironment:
    """A curated environment's published specification."""

    name: str
    python: str
    conda: tuple[str, ...]
    pip: tuple[str, ...]
    azure_only: tuple[str, ...]
    source: str
    built: str  # the image's publication date: unpinned packages resolve as of it
    image: str  # the release (tag, commit) that date is read from

    def conda_file(self) -> dict[str, Any]:
        """The specification as an Azure ML conda file (what `conda_file:` would hold), without
        the Azure-only packages."""
        pip = [dep for dep in self.conda if dep != "pip"]
        deps: list[Any] = [f"python={self.python}", "pip", {"pip": [*pip, *self.pip]}]
        return {"name": self.name, "channels": ["conda-forge"], "dependencies": deps}


class UnknownCuratedEnvironment(LookupError):
    """A curated reference whose name is not in the table; callers warn with `str(exc)` and run
    in the project venv, as for any environment that cannot be reproduced offline."""


def parse(reference: str) -> CuratedReference | None:
    """The curated name and version/label of `reference`, or None when it is not in a curated
    form (a workspace environment `azureml:<name>:<version>`, another registry, a definition)."""
    m = _WORKSPACE.match(reference) or _REGISTRY.match(reference)
    if m is None:
        return None
    label = m.group("label")
    version = m.group("version")
    return CuratedReference(
        reference, m.group("name"), version, label or (None if version else "latest")
    )


def lookup(reference: str) -> CuratedEnvironment | None:
    """The specification of a curated reference; None when `reference` is not curated.

    Raises UnknownCuratedEnvironment (naming the reference and the known names) for a curated
    form whose name the table does not have.
    """
    ref = parse(reference)
    if ref is None:
        return None
    found = specification(ref.name)
    if found is None:
        raise UnknownCuratedEnvironment(
            f"{reference} is a curated environment ({ref.name}) whose specification amlocal "
            f"does not have (known: {', '.join(sorted(CURATED))})"
        )
    return found


def specification(name: str) -> CuratedEnvironment | None:
    """The table's row for a curated environment name (case-insensitive; legacy
    `<family>-ubuntuXX.XX-pyNN-cpu` names map to `<family>` on that Python)."""
    key = name.lower()
    python = None
    if key not in CURATED and (m := _LEGACY.match(key)) and m.group("family") in CURATED:
        key, python = m.group("family"), f"{m.group('major')}.{m.group('minor')}"
    row = CURATED.get(key)
    if row is None:
        return None
    return CuratedEnvironment(
        name=key,
        python=python or row["python"],
        conda=tuple(row["conda"]),
        pip=tuple(row["pip"]),
        azure_only=tuple(row["azure_only"]),
        source=row["source"],
        built=row["built"],
        image=row["image"],
    )
