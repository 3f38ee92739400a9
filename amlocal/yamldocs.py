"""Finding and reading Azure ML YAML files: which `az ml` kind a file is (by its
`$schema`), and the `Problem` every check reports. Shared by `amlocal.validate` (azure-ai-ml's
checks) and `amlocal.crossfile` (the checks across files)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amlocal import yamlsafe
from amlocal.errors import InvalidInput

# The folders `make validate` checks when no path is given.
DEFAULT_DIRS = (
    "components",
    "pipelines",
    "endpoints",
    "environments",
    "data",
    "compute",
    "schedules",
    "registries",
)

# `$schema` file stem -> amlocal.loader kind (the `az ml` group whose `create -f` reads it).
SCHEMA_KINDS: dict[str, str] = {
    "commandComponent": "component",
    "parallelComponent": "component",
    "pipelineComponent": "component",
    "sparkComponent": "component",
    "pipelineJob": "job",
    "commandJob": "job",
    "sweepJob": "job",
    "sparkJob": "job",
    "data": "data",
    "environment": "environment",
    "model": "model",
    "amlCompute": "compute",
    "computeInstance": "compute",
    "kubernetesCompute": "compute",
    "managedOnlineEndpoint": "online-endpoint",
    "kubernetesOnlineEndpoint": "online-endpoint",
    "managedOnlineDeployment": "online-deployment",
    "kubernetesOnlineDeployment": "online-deployment",
    "batchEndpoint": "batch-endpoint",
    "batchDeployment": "batch-deployment",
    "modelBatchDeployment": "batch-deployment",
    "pipelineComponentBatchDeployment": "batch-deployment",
    "schedule": "schedule",
    "registry": "registry",
}
SCHEMA_HOST = "azuremlschemas.azureedge.net"
SCHEMA_STEM = re.compile(r"/([A-Za-z]+)\.schema\.json$")


@dataclass(frozen=True)
class Problem:
    """One finding: `file: key: message`. Warnings are printed but do not fail the run."""

    path: Path
    key: str
    message: str
    severity: str = "error"

    def render(self, root: Path) -> str:
        shown = _relative(self.path, root)
        tag = "" if self.severity == "error" else "warning: "
        return (
            f"{shown}: {self.key}: {tag}{self.message}"
            if self.key
            else f"{shown}: {tag}{self.message}"
        )


@dataclass
class Doc:
    """An Azure ML YAML file: its path, `az ml` kind, `$schema` stem and parsed content."""

    path: Path
    kind: str
    schema: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def display(self) -> str:
        return _relative(self.path, Path.cwd())


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Every .yml/.yaml under the given files and folders, sorted, hidden folders skipped."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            for f in path.rglob("*"):
                rel = f.relative_to(path)
                if f.suffix in (".yml", ".yaml") and f.is_file():
                    if not any(part.startswith(".") for part in rel.parts):
                        found.add(f)
    return sorted(found)


def schema_kind(raw: Any) -> tuple[str | None, str | None]:
    """(kind, schema stem) of a parsed YAML; kind None means not an Azure ML file."""
    if not isinstance(raw, dict) or "$schema" not in raw:
        return None, None
    schema = str(raw["$schema"])
    if SCHEMA_HOST not in schema:
        return None, None
    match = SCHEMA_STEM.search(schema)
    stem = match.group(1) if match else schema
    return SCHEMA_KINDS.get(stem), stem


def read_docs(files: list[Path]) -> tuple[list[Doc], list[Path], list[Problem]]:
    """Parse every file: Azure ML docs, skipped files, and YAML/`$schema` errors."""
    docs: list[Doc] = []
    skipped: list[Path] = []
    problems: list[Problem] = []
    for path in files:
        try:
            raw = yamlsafe.load_file(path)
        except InvalidInput as exc:  # an alias bomb, a recursive alias, deep nesting
            problems.append(Problem(path, "", str(exc).removeprefix(f"{path}: ")))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else ""
            problems.append(Problem(path, where, f"not valid YAML: {exc}".splitlines()[0]))
            continue
        kind, stem = schema_kind(raw)
        if stem is None:
            skipped.append(path)
        elif kind is None:
            problems.append(Problem(path, "$schema", f"unsupported Azure ML schema {stem!r}"))
        else:
            docs.append(Doc(path=path, kind=kind, schema=stem, raw=raw))
    return docs, skipped, problems
