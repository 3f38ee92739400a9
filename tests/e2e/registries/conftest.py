"""Fixtures for named workspaces and registries: one amlocal home, driven through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import ENV_YML, Project


@pytest.fixture()
def home(tmp_path: Path) -> Project:
    """A project whose home holds the default workspace and two named ones, dev and prod;
    `testenv` is registered in each (the engine tests' environment)."""
    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    p.run("workspace", "create", "-n", "dev", "-g", "rg-ml", "-o", "none")
    p.run("workspace", "create", "-n", "prod", "-g", "rg-ml", "-o", "none")
    for ws in ("dev", "prod"):
        p.run("environment", "create", "-f", "env.yml", "-w", ws, "-g", "rg-ml", "-o", "none")
    return p
