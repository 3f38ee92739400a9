"""MLTable pre-flight: `job validate` and `make validate` (python -m amlocal.validate) find a
missing MLTable file, `paths:` that resolve to nothing and unknown transformations in a
second, naming the file and key, where Azure fails the job minutes in. Fixtures:
tests/fixtures/mltable-preflight/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cli_support import Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mltable-preflight"


def test_job_validate_checks_the_mltable_inputs(project: Project) -> None:
    shutil.copytree(FIXTURES, project.root, dirs_exist_ok=True)
    assert project.json("job", "validate", "-f", "job-good.yml") == {"result": "Succeeded"}
    r = project.run("job", "validate", "-f", "job-missing.yml", check=False)
    assert r.returncode == 2
    assert "job-missing.yml: inputs.table.path: Not able to find MLTable file" in r.stderr
    r = project.run("job", "validate", "-f", "job-typo.yml", check=False)
    assert r.returncode == 2
    assert "typo/MLTable: paths[0].file: './row.csv' is not a file" in r.stderr


def test_make_validate_checks_every_mltable_file(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "data", tmp_path / "data")
    r = subprocess.run(
        [sys.executable, "-m", "amlocal.validate", "--root", str(tmp_path), str(tmp_path / "data")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr
    assert "data/typo/MLTable: paths[0].file: './row.csv' is not a file" in err
    assert (
        "data/bad-transform/MLTable: transformations[0].read_delimited.header: "
        "'first_line' is not one of" in err
    )
    assert "data/bad-transform/MLTable: transformations[1].select_columns: unknown" in err
    assert "data/good/" not in err
