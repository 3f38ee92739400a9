"""The studio's process stays small and quick to start: none of its modules imports MLflow,
azure-ai-ml, pandas or NumPy (it reads the SQLite files with plain SQL)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# It starts a fresh interpreter: not in the in-process tier.
pytestmark = pytest.mark.subprocess

HEAVY = ("mlflow", "azure", "pandas", "numpy", "sklearn", "sqlalchemy")


def test_studio_modules_import_nothing_heavy() -> None:
    code = (
        "import sys, pkgutil, importlib, amlocal.studio, amlocal.studio.views\n"
        "import amlocal.cli, amlocal.studio.server, amlocal.studio.app\n"
        "for m in pkgutil.walk_packages(amlocal.studio.__path__, 'amlocal.studio.'):\n"
        "    importlib.import_module(m.name)\n"
        "import amlocal.schedules.triggers, uvicorn\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = [m for m in out.stdout.split() if m.split(".")[0] in HEAVY]
    assert heavy == []
