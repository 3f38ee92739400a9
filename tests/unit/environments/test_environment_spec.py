"""What an environment declares, as pip requirements, and which steps get an overlay venv."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlocal.environments import overlay, spec


def test_conda_file_becomes_pip_requirements() -> None:
    s = spec.from_conda(
        """\
        dependencies:
          - python=3.10.4
          - pip=23.0
          - conda-forge::pytorch>=2,<3
          - pandas=1.5.3
          - numpy 1.22.*
          - scipy=1.10.0=py310h
          - cudatoolkit=11.8
          - pip:
            - six==1.15.0
            - --extra-index-url https://example.invalid/simple
            - azureml-core=={{latest-pypi-version}}
            - numpy=1.26.4
        """.replace("        ", "")
    )
    assert s.python == "3.10"
    assert s.requirements == (
        "torch>=2,<3",
        "pandas==1.5.3.*",
        "numpy==1.22.*",
        "scipy==1.10.0.*",
        "six==1.15.0",
        "azureml-core",
        "numpy==1.26.4",
    )
    assert s.left_out == ("cudatoolkit=11.8", "--extra-index-url https://example.invalid/simple")


def test_unmet_names_what_the_project_venv_lacks() -> None:
    s = spec.Spec(requirements=("pyyaml>=5", "six==0.0.1", "no-such-package-zz"))
    problems = spec.unmet(s)
    assert len(problems) == 2
    assert problems[0].startswith("six==0.0.1 is declared but")
    assert problems[1] == "no-such-package-zz is not installed"


@pytest.mark.parametrize(
    ("command", "script", "needed"),
    [
        ("pip install six==1.15.0 && python t.py", "", True),
        ("python -m pip install -q six", "", True),
        ("uv pip install six", "", True),
        ("python t.py --uv 3", "print('pip freeze')", False),
        (
            "python t.py",
            "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'install', 'x'])",
            True,
        ),
        ("bash setup.sh", "", False),
    ],
)
def test_overlay_for_steps_that_install(
    command: str, script: str, needed: bool, tmp_path: Path
) -> None:
    (tmp_path / "t.py").write_text(script)
    assert overlay.needed(command, tmp_path) is needed
