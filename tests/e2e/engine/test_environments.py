"""A step runs in what its environment declares (issue 18), through the CLI.

These tests build venvs with uv from PyPI, the only index this machine reaches; without it
they skip, saying so.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import Project


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


needs_index = pytest.mark.skipif(
    not _index_reachable(), reason="building environments needs PyPI (pypi.org:443 unreachable)"
)

PRINT_SIX = """python -c "import six, sys; print('six', six.__version__, 'prefix', sys.prefix)\""""


def _log(project: Project, job: str, step: str) -> str:
    return (project.home / "jobs" / f"{job}_{step}" / "user_logs" / "std_log.txt").read_text()


def _freeze() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


@needs_index
def test_pinned_version_gets_a_venv_built_once_and_reused(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    project.env["AMLOCAL_CACHE_DIR"] = str(cache)
    project.write(
        "conda.yml",
        """\
        name: old-six
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - pip
          - pip:
              - six==1.15.0
        """,
    )
    project.write(
        "job.yml",
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: {PRINT_SIX}
        environment:
          image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
          conda_file: conda.yml
        """,
    )
    job, first = project.create("job.yml")
    assert job["status"] == "Completed", first.stderr
    assert "six 1.15.0 prefix " + str(cache / "envs") in first.stderr
    assert "building environment" in first.stderr
    prefix = first.stderr.split("six 1.15.0 prefix ")[1].split()[0]
    job, second = project.create("job.yml")
    assert job["status"] == "Completed"
    assert f"six 1.15.0 prefix {prefix}" in second.stderr  # the same venv, not rebuilt
    assert "building environment" not in second.stderr
    import six  # the project venv keeps its own version

    assert six.__version__ != "1.15.0"


@needs_index
def test_project_venv_is_used_when_it_satisfies_the_environment(project: Project) -> None:
    from importlib import metadata

    have = metadata.version("six")
    project.write(
        "conda.yml",
        f"dependencies:\n  - python=3.11\n  - pip:\n    - six=={have}\n    - pyyaml>=5\n",
    )
    project.write(
        "job.yml",
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: {PRINT_SIX}
        environment: {{image: "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04", conda_file: conda.yml}}
        """,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed"
    assert f"six {have} prefix {Path(sys.prefix)}" in r.stderr
    assert "building environment" not in r.stderr


@needs_index
def test_concurrent_pip_installs_leave_the_project_venv_unchanged(project: Project) -> None:
    before = _freeze()
    check = "import six; assert six.__version__ == '{v}', six.__version__; print('{s} got', six.__version__)"
    jobs = "".join(
        f"\n  {s}:\n    type: command\n    environment: azureml:testenv@latest\n"
        f"    command: >-\n      pip install -q --disable-pip-version-check six=={v}"
        f' && python -c "{check.format(v=v, s=s)}"\n'
        for s, v in (("a", "1.15.0"), ("b", "1.16.0"))
    )
    project.write(
        "pipeline.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
        "type: pipeline\nsettings:\n  default_compute: azureml:cpu-cluster\njobs:" + jobs,
    )
    job, r = project.create("pipeline.yml")
    assert job["status"] == "Completed", r.stderr
    assert "a got 1.15.0" in _log(project, job["name"], "a")
    assert "b got 1.16.0" in _log(project, job["name"], "b")
    assert _freeze() == before


def test_unknown_curated_name_runs_in_the_project_venv_with_a_warning(project: Project) -> None:
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python -c "import sys; print('prefix', sys.prefix)"
        environment: azureml:AzureML-no-such-env-9.9@latest
        """,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed"
    assert "WARNING: azureml:AzureML-no-such-env-9.9@latest" in r.stderr
    assert f"prefix {Path(sys.prefix)}" in r.stderr


CURATED_STEP = """python -c "import pandas, sklearn, sys; pandas.DataFrame().append; print('{s}', pandas.__version__, sklearn.__version__, sys.prefix)\""""


@needs_index
def test_curated_environment_in_both_forms(project: Project) -> None:
    forms = {
        "ws": "azureml:AzureML-sklearn-1.5@latest",
        "reg": "azureml://registries/azureml/environments/sklearn-1.5/versions/52",
    }
    jobs = "".join(
        f"\n  {s}:\n    type: command\n    environment: {ref}\n"
        f"    command: >-\n      {CURATED_STEP.format(s=s)}\n"
        for s, ref in forms.items()
    )
    project.write(
        "pipeline.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
        "type: pipeline\nsettings:\n  default_compute: azureml:cpu-cluster\njobs:" + jobs,
    )
    job, r = project.create("pipeline.yml")
    assert job["status"] == "Completed", r.stderr
    lines = {s: _log(project, job["name"], s).strip().splitlines()[-1] for s in forms}
    for line in lines.values():
        _, pandas, sklearn, prefix = line.split()
        assert pandas == "1.5.3" and sklearn.startswith("1.5."), line  # pandas 1 has .append
    assert lines["ws"].split()[3] == lines["reg"].split()[3]  # one venv for both forms
    assert "left out (Azure-only or no pip equivalent): azureml-core" in r.stderr


@needs_index
def test_mlflow_2_step_logs_into_the_nested_run_through_the_tracking_server(
    project: Project,
) -> None:
    project.write(
        "src/log.py",
        """\
        import mlflow

        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("rmse", 1.25)
        print("client", mlflow.__version__, mlflow.get_tracking_uri())
        """,
    )
    project.write(
        "pipeline.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: old-client
        settings:
          default_compute: azureml:cpu-cluster
        jobs:
          train:
            type: command
            code: ./src
            command: python log.py
            environment:
              image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
              conda_file:
                dependencies:
                  - python=3.11
                  - pip:
                    - mlflow==2.18.0
          trial:
            type: command
            code: ./src
            command: uv pip install -q mlflow==2.18.0 && python log.py
            environment: azureml:testenv@latest
        """,
    )
    before = _freeze()
    job, r = project.create("pipeline.yml")
    assert job["status"] == "Completed", r.stderr
    assert _freeze() == before
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project.home / 'mlflow.db'}")
    parents = set()
    for step in ("train", "trial"):  # a built venv's MLflow 2, and one a step installed
        assert "client 2.18.0 http://127.0.0.1:" in _log(project, job["name"], step)
        run_id = project.steps(job["name"])[step]["properties"]["mlflow.runId"]
        run = client.get_run(run_id)
        assert run.data.params == {"alpha": "0.5"}
        assert run.data.metrics == {"rmse": 1.25}
        parents.add(run.data.tags["mlflow.parentRunId"])
    (parent,) = parents  # both nested in the pipeline's run
    assert client.get_run(parent).info.experiment_id == run.info.experiment_id


@needs_index
def test_docker_build_context_requirements_are_installed(project: Project) -> None:
    project.write("ctx/Dockerfile", "FROM python:3.11\nCOPY requirements.txt .\n")
    project.write("ctx/requirements.txt", "six==1.15.0\n")
    project.write(
        "ctxenv.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
        name: ctxenv
        build:
          path: ./ctx
        """,
    )
    project.run("environment", "create", "-f", "ctxenv.yml")
    project.write(
        "job.yml",
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: {PRINT_SIX}
        environment: azureml:ctxenv@latest
        """,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed"
    assert "six 1.15.0 prefix " in r.stderr


def _compiled_share(venv: Path) -> float:
    """The share of the venv's .py files that have a .pyc (for the venv's interpreter)."""
    sources = list((venv / "lib").rglob("*.py"))
    compiled = [p for p in sources if any((p.parent / "__pycache__").glob(f"{p.stem}.*.pyc"))]
    return len(compiled) / max(1, len(sources))


@needs_index
def test_a_built_venv_has_its_bytecode_compiled(project: Project, tmp_path: Path) -> None:
    """PYTHONDONTWRITEBYTECODE=1 (CI, containers) would otherwise have every step compile
    every module it imports, every run: the builder compiles all of the venv, once."""
    cache = tmp_path / "cache"
    project.env["AMLOCAL_CACHE_DIR"] = str(cache)
    project.env["PYTHONDONTWRITEBYTECODE"] = "1"
    project.write(
        "conda.yml",
        """\
        name: bytecode
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - pip
          - pip:
              - six==1.15.0
        """,
    )
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python -c "import sys; print('prefix', sys.prefix)"
        environment:
          image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
          conda_file: conda.yml
        """,
    )
    job, run = project.create("job.yml")
    assert job["status"] == "Completed", run.stderr
    assert "building environment" in run.stderr
    venv = Path(run.stderr.split("prefix ")[1].split()[0])
    assert venv.parent == cache / "envs"
    assert _compiled_share(venv) >= 0.9
