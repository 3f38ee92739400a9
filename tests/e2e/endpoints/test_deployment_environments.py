"""Deployments serve in the environment they declare (issue 28, item 3), through the CLI.

Offline: uv runs with UV_OFFLINE=1, so a venv is built only from uv's cache (what `make setup`
installed) and a local wheel folder (UV_FIND_LINKS) holding `amlocal-envprobe`, a distribution
of these tests that no venv but a built one has. One built-venv cache for the module, as a
user's is: a second deployment with the same environment finds its venv built.
Fixtures: tests/fixtures/deployment-envs/.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import Project, write_wheel

from tests.batch_support import wait_status

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "deployment-envs"
PROBE = "amlocal-envprobe"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("deployment-envs")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    p = Project(root)
    write_wheel(root / "wheels", PROBE, "2.0.0")
    p.env.pop("AMLOCAL_ENVIRONMENTS", None)
    p.env.update(
        UV_OFFLINE="1",  # no test reaches an index
        UV_FIND_LINKS=str(root / "wheels"),
        AMLOCAL_CACHE_DIR=str(root / "cache"),
    )
    p.run("online-endpoint", "create", "-f", "endpoint.yml", "-o", "none")
    yield p
    p.run("online-endpoint", "delete", "-n", "env-online", "--yes", check=False)


def _deploy(p: Project, file: str) -> Any:
    return p.run("online-deployment", "create", "-f", file, "-o", "none")


def _invoke(p: Project, deployment: str, body: str = "request.json") -> Any:
    out = p.run(
        "online-endpoint", "invoke", "-n", "env-online",
        "--deployment-name", deployment, "--request-file", body,
    ).stdout  # fmt: skip
    answer = json.loads(out)
    return json.loads(answer) if isinstance(answer, str) else answer


def _logs(p: Project, deployment: str) -> str:
    return p.run("online-deployment", "get-logs", "-n", deployment, "-e", "env-online").stdout


def _built(p: Project) -> list[Path]:
    return [d for d in (p.root / "cache" / "envs").glob("*") if (d / "amlocal-env.json").is_file()]


def test_a_pinned_version_the_project_lacks_is_served_from_its_own_venv(project: Project) -> None:
    r = _deploy(project, "online-pinned.yml")
    assert "building environment inline (pinned)" in r.stderr, r.stderr
    got = _invoke(project, "pinned")
    envs = project.root / "cache" / "envs"
    assert got["probe"] == "2.0.0", got
    assert Path(got["prefix"]).parent == envs, got
    # the inference server is in the built venv, at this project's pin (as Azure's images
    # carry it), not borrowed from the project venv
    from importlib import metadata

    assert got["server"] == metadata.version("azureml-inference-server-http")
    assert f"python {got['prefix']}/bin/python" in _logs(project, "pinned")

    # the same environment again: its venv is found, not rebuilt
    shutil.copy(project.root / "online-pinned.yml", project.root / "online-again.yml")
    text = (project.root / "online-again.yml").read_text().replace("name: pinned", "name: again")
    (project.root / "online-again.yml").write_text(text)
    r = _deploy(project, "online-again.yml")
    assert "building environment" not in r.stderr, r.stderr
    assert _invoke(project, "again")["prefix"] == got["prefix"]


def test_an_environment_the_project_venv_satisfies_builds_nothing(project: Project) -> None:
    before = _built(project)
    r = _deploy(project, "online-satisfied.yml")
    assert "building environment" not in r.stderr and "WARNING" not in r.stderr, r.stderr
    got = _invoke(project, "satisfied")
    assert Path(got["prefix"]) == Path(sys.prefix)
    assert got["probe"] is None
    assert _built(project) == before


def test_an_unbuildable_pin_serves_in_the_project_venv_naming_every_moved_pin(
    project: Project,
) -> None:
    """Through Microsoft's documented az commands (fixtures' deploy-unbuildable.sh)."""
    r = project.az_script("deploy-unbuildable.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    ours = sys.version.split()[0]
    from amlocal import packages

    moved = [
        f"python 3.12 declared, {ours} serves",
        f"scikit-learn 1.7.* declared, {packages.version('scikit-learn')} serves",
        f"numpy 2.3.1.* declared, {packages.version('numpy')} serves",
        f"{PROBE} 9.0.0 declared, not installed",
    ]
    # create: one line names every moved pin, after the one saying why
    line = next((ln for ln in r.stderr.splitlines() if "declared" in ln), "")
    assert line.startswith("WARNING: deployment unbuildable: environment inline (unbuildable):")
    assert all(m in line for m in moved), r.stderr
    assert "could not be built" in r.stderr and "serves in the project venv" in r.stderr
    # invoke: served by the project venv
    _, answer = _json_values(r.stdout)[:2]  # create's record, then invoke's answer
    answer = json.loads(answer) if isinstance(answer, str) else answer
    assert Path(answer["prefix"]) == Path(sys.prefix), r.stdout
    # get-logs: the same line at the top of the instance log
    logs = r.stdout[r.stdout.index("--- amlocal: starting instance") :]
    assert all(m in logs for m in moved), logs


def _json_values(out: str) -> list[Any]:
    """The JSON values a script printed one after another (up to get-logs' plain text)."""
    values, rest, decoder = [], out.lstrip(), json.JSONDecoder()
    while rest:
        try:
            value, end = decoder.raw_decode(rest)
        except ValueError:
            break
        values.append(value)
        rest = rest[end:].lstrip()
    return values


def _save_probe_model(dest: Path, requirements: list[str]) -> None:
    import mlflow.pyfunc

    code = FIXTURES / "mlflow-src" / "probe_model.py"
    mlflow.pyfunc.save_model(str(dest), python_model=str(code), pip_requirements=requirements)


def test_an_mlflow_models_own_requirements_are_honoured(project: Project) -> None:
    from amlocal import packages

    pins = [f"{d}=={packages.version(d)}" for d in ("mlflow-skinny", "numpy", "pandas")]
    _save_probe_model(project.root / "probe-model", [*pins, f"{PROBE}==2.0.0"])
    project.run(
        "model", "create", "--name", "envprobe-model", "--path", "probe-model",
        "--type", "mlflow_model", "-o", "none",
    )  # fmt: skip
    r = _deploy(project, "online-mlflow.yml")
    assert "building environment mlflow-model" in r.stderr, r.stderr
    probe, prefix = _invoke(project, "mlflow", "mlflow-request.json")
    assert probe == "2.0.0"
    assert Path(prefix).parent == project.root / "cache" / "envs"


def test_batch_mini_batches_run_in_the_deployments_environment(project: Project) -> None:
    project.run("batch-endpoint", "create", "-f", "batch-endpoint.yml", "-o", "none")
    r = project.run("batch-deployment", "create", "-f", "batch-pinned.yml", "--set-default")
    assert "building environment inline (pinned)" in r.stderr, r.stderr
    job = project.json("batch-endpoint", "invoke", "-n", "env-batch", "--input", "data")
    assert wait_status(project, job["name"], {"Completed", "Failed", "Canceled"})["status"] == (
        "Completed"
    )
    out = project.root / "batch-out"
    project.run("job", "download", "-n", job["name"], "--all", "--download-path", str(out))
    rows = [ln.split() for p in out.rglob("predictions.csv") for ln in p.read_text().splitlines()]
    assert sorted(r[0] for r in rows) == ["a.csv", "b.csv"], rows
    assert {r[1] for r in rows} == {"2.0.0"}
    assert {Path(r[2]).parent for r in rows} == {project.root / "cache" / "envs"}
