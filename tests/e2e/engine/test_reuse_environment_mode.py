"""The interpreter a step would run in is part of its reuse fingerprint (issue 18), through the
CLI: a step that ran in the project venv (AMLOCAL_ENVIRONMENTS=project, or an environment the
project venv satisfies) is not reused by a rerun with `--isolate-environments`, which runs it
in a built venv; reruns that would run it where it ran before are reused.

Building the venv needs uv's seed packages from PyPI (or uv's cache); without the index the
test skips, saying so.
"""

from __future__ import annotations

import socket
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


PIPE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: reuse-env-mode
settings:
  default_compute: azureml:cpu-cluster
jobs:
  where:
    type: command
    command: python -c "import sys; print('prefix', sys.prefix)"
    environment:
      image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
      conda_file: conda.yml
"""


def _run(project: Project, *extra: str) -> tuple[bool, str]:
    """(reused, the prefix the step's log names) of one run of the pipeline."""
    job, r = project.create("pipe.yml", *extra)
    assert job["status"] == "Completed", r.stderr
    step = project.steps(job["name"])["where"]
    props = step["properties"]
    reused = props.get("azureml.isreused") == "true"
    ran = props.get("azureml.reusedrunid") or step["name"]  # a reused step shows its log
    log = (project.home / "jobs" / ran / "user_logs" / "std_log.txt").read_text()
    return reused, log.split("prefix ", 1)[1].split()[0]


@pytest.mark.skipif(not _index_reachable(), reason="building a venv needs PyPI (unreachable)")
def test_isolated_rerun_of_a_project_venv_step_runs_again(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    project.env["AMLOCAL_CACHE_DIR"] = str(cache)
    # only the interpreter's version: the project venv satisfies it
    v = sys.version_info
    project.write("conda.yml", f"dependencies:\n  - python={v.major}.{v.minor}\n")
    project.write("pipe.yml", PIPE)
    project.env["AMLOCAL_ENVIRONMENTS"] = "project"
    assert _run(project) == (False, sys.prefix)
    # the default mode would run it in the project venv too: reused
    del project.env["AMLOCAL_ENVIRONMENTS"]
    assert _run(project) == (True, sys.prefix)
    # --isolate-environments runs it in a built venv: not the same interpreter, not reused
    reused, prefix = _run(project, "--isolate-environments")
    assert not reused and prefix.startswith(str(cache / "envs")), prefix
    # ... and again with the same flag: the same built venv, reused
    assert _run(project, "--isolate-environments") == (True, prefix)
