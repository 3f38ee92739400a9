"""Where a local workspace lives: `.amlocal/` in the current directory, or `AMLOCAL_HOME`.

Layout (all under the workspace home):
  store.db                  amlocal's records (jobs, assets, endpoints) and caches
  mlflow.db, mlartifacts/   the MLflow tracking store and model registry
  datastores/<name>/        local folders standing in for Azure datastores
  jobs/<job-name>/          per-job working copy, logs and ./outputs
  envs/<hash>/              venvs built with --isolate-environments

One amlocal home holds several workspaces and the registries they share (amlocal.workspaces):
the home itself is the default workspace "local" (today's layout, read in place), a named
workspace is `workspaces/<name>/` (the same layout, plus `workspace.json` naming it), and
registries are `registries/<name>/`. Steps, daemons and instances get the workspace's own
folder as AMLOCAL_HOME, so a workspace knows its name and home from its folder alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from amlocal import names
from amlocal.store import Store

DEFAULT_DATASTORE = "workspaceblobstore"
# The datastores (and folders) an Azure ML workspace starts with, so a datastore path such as
# azureml://datastores/workspaceblobstore/paths/azureml resolves before anything has run.
INITIAL_FOLDERS = (
    "workspaceblobstore/azureml",
    "workspacefilestore",
    "workspaceartifactstore",
    "workspaceworkingdirectory",
)
WORKSPACE_NAME = "local"
WORKSPACE_FILE = "workspace.json"  # in a named workspace's folder: its name and resource group
NAMED_DIR = "workspaces"
# The ARM prefix of every local resource id (Azure's shape, with "local" placeholders).
ARM_PREFIX = "/subscriptions/local/resourceGroups/local/providers/Microsoft.MachineLearningServices"


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as shown to users: fields starting with "_" are engine-private."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def public_job(record: dict[str, Any]) -> dict[str, Any]:
    """A job record in the `az ml job show` shape: no private fields, outputs' `path`."""
    out = public(record)
    for o in (out.get("outputs") or {}).values():
        if isinstance(o, dict) and "uri" in o:
            o["path"] = o.pop("uri")
    return out


def home_dir() -> Path:
    return Path(os.environ.get("AMLOCAL_HOME") or Path.cwd() / ".amlocal").resolve()


@dataclass
class Workspace:
    """Paths and handles for one local workspace."""

    home: Path = field(default_factory=home_dir)

    def __post_init__(self) -> None:
        if not (self.home / "datastores" / INITIAL_FOLDERS[0]).is_dir():
            for folder in INITIAL_FOLDERS:
                (self.home / "datastores" / folder).mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)

    @cached_property
    def store(self) -> Store:
        return Store(self.home / "store.db")

    @cached_property
    def identity(self) -> dict[str, str]:
        """The workspace's name and resource group: its `workspace.json`, or the default's."""
        marker = self.home / WORKSPACE_FILE
        if self.home.parent.name == NAMED_DIR and marker.is_file():
            try:
                doc = json.loads(marker.read_text()[:65536])
                return {"name": str(doc["name"]), "resource_group": str(doc["resource_group"])}
            except (ValueError, KeyError, TypeError):
                pass
        return {"name": WORKSPACE_NAME, "resource_group": "local"}

    @property
    def name(self) -> str:
        return self.identity["name"]

    @property
    def root(self) -> Path:
        """The amlocal home this workspace belongs to (registries live there)."""
        named = self.home.parent.name == NAMED_DIR and (self.home / WORKSPACE_FILE).is_file()
        return self.home.parent.parent if named else self.home

    @property
    def mlflow_tracking_uri(self) -> str:
        """A user's own MLFLOW_TRACKING_URI wins, as the issue and Azure users expect."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    def under(self, *parts: str) -> Path:
        """A state path under the workspace home; names that would leave it are refused."""
        return names.under(self.home, *parts)

    def datastore_dir(self, datastore: str = DEFAULT_DATASTORE) -> Path:
        return self.under("datastores", datastore)

    def job_dir(self, job_name: str) -> Path:
        return self.under("jobs", job_name)

    def env_dir(self, digest: str) -> Path:
        return self.under("envs", digest)

    def arm_id(self, path: str = "") -> str:
        """The resource id of the workspace, or of `path` (e.g. "jobs/x") inside it."""
        rg = self.identity["resource_group"]
        prefix = ARM_PREFIX.replace("/resourceGroups/local/", f"/resourceGroups/{rg}/")
        return f"{prefix}/workspaces/{self.name}" + (f"/{path}" if path else "")

    def show(self) -> dict:
        """The `az ml workspace show` shape, with local values."""
        return {
            "name": self.name,
            "display_name": self.name,
            "location": "local",
            "resource_group": self.identity["resource_group"],
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
            "discovery_url": None,
            "id": self.arm_id(),
            "storage_account": str(self.datastore_dir()),
            "tags": {"amlocal.home": str(self.home)},
        }
