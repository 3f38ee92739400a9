"""`make setup`: uv at the version pyproject.toml pins, a Python version check that names
the interpreter."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_makefile_installs_the_uv_pyproject_pins() -> None:
    makefile = (REPO / "Makefile").read_text()
    pinned = re.search(r'"uv==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and f"UV_VERSION ?= {pinned.group(1)}" in makefile


def test_setup_refuses_an_old_python_by_name(tmp_path: Path) -> None:
    old = tmp_path / "python-old"
    old.write_text("#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.9.0' && exit 0\nexit 1\n")
    old.chmod(0o755)
    r = subprocess.run(
        ["make", "-s", f"VENV={tmp_path / 'venv'}", f"PYTHON={old}", "setup"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "Python >= 3.11 is needed" in r.stderr and "3.9.0" in r.stderr
    assert not (tmp_path / "venv").exists()
