"""Environment pins must not drift from pyproject.toml.

The venv (and so amlocal and every test) installs from pyproject.toml, while Azure ML builds
images from environments/*.conda.yml. If the two disagree, a model pickled in one set of
versions is loaded in another, which is exactly what this test exists to prevent.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ENV_DIR = ROOT / "environments"
CONDA_FILES = sorted(ENV_DIR.glob("*.conda.yml"))
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*$")


def normalize(name: str) -> str:
    """PEP 503 name normalization, so `scikit_learn` and `Scikit-Learn` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pin(spec: str) -> tuple[str, str] | None:
    """Return (normalized name, version) for an exact `name==version` pin, else None."""
    match = PIN.match(spec)
    return (normalize(match.group(1)), match.group(2)) if match else None


def pyproject_pins(path: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Exact pins from [project] dependencies and optional dependencies."""
    project = tomllib.loads(path.read_text())["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return dict(pin for pin in map(parse_pin, specs) if pin)


def conda_pip_specs(path: Path) -> list[str]:
    """The pip requirement strings of a conda environment file."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return [spec for dep in deps if isinstance(dep, dict) for spec in dep.get("pip", [])]


def pin_problems(conda_file: Path, pins: dict[str, str]) -> list[str]:
    """Every way in which a conda file's pip section disagrees with the pyproject pins."""
    problems = []
    for spec in conda_pip_specs(conda_file):
        pin = parse_pin(spec)
        if pin is None:
            problems.append(f"{conda_file.name}: {spec!r} is not an exact `name==version` pin")
        elif pin[0] not in pins:
            problems.append(f"{conda_file.name}: {pin[0]} is not pinned in pyproject.toml")
        elif pins[pin[0]] != pin[1]:
            problems.append(
                f"{conda_file.name}: {pin[0]}=={pin[1]} but pyproject.toml has =={pins[pin[0]]}"
            )
    return problems


def test_there_are_conda_files_to_check() -> None:
    assert {p.name for p in CONDA_FILES} >= {"train.conda.yml", "score.conda.yml"}


@pytest.mark.parametrize("conda_file", CONDA_FILES, ids=lambda p: p.name)
def test_conda_pip_pins_match_pyproject(conda_file: Path) -> None:
    assert conda_pip_specs(conda_file), f"{conda_file.name} has no pip section"
    assert pin_problems(conda_file, pyproject_pins()) == []


@pytest.mark.parametrize("conda_file", CONDA_FILES, ids=lambda p: p.name)
def test_conda_python_matches_the_one_we_test_on(conda_file: Path) -> None:
    deps = yaml.safe_load(conda_file.read_text())["dependencies"]
    assert "python=3.11" in deps


def test_score_env_has_the_inference_server() -> None:
    names = {parse_pin(s)[0] for s in conda_pip_specs(ENV_DIR / "score.conda.yml")}
    assert {"azureml-inference-server-http", "inference-schema", "scikit-learn"} <= names


def test_checker_reports_drift_missing_and_unpinned(tmp_path: Path) -> None:
    """The checker itself must be able to fail, or the tests above prove nothing."""
    conda = tmp_path / "drift.conda.yml"
    conda.write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n"
        "      - numpy==0.0.1\n      - not-in-pyproject==1.0\n      - pandas>=2\n"
        "      - Scikit_Learn==1.9.1\n"
    )
    pins = {"numpy": "2.4.6", "pandas": "2.3.3", "scikit-learn": "1.9.1"}
    problems = pin_problems(conda, pins)
    assert len(problems) == 3
    assert "numpy==0.0.1 but pyproject.toml has ==2.4.6" in problems[0]
    assert "not-in-pyproject is not pinned" in problems[1]
    assert "not an exact" in problems[2]


def test_pyproject_parser_reads_the_real_pins() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    pins = pyproject_pins()
    assert pins, "no exact pins found in pyproject.toml"
    for name, version in pins.items():
        # Each parsed pin appears verbatim (modulo name spelling) in the file.
        assert re.search(rf"{name.replace('-', '[-_.]')}=={re.escape(version)}", text, re.I)
    assert "pytest" in pins  # optional (dev) dependencies are read too
