"""YAML bombs (issue 32, item 5), through the real CLI in subprocesses: a ~600-byte job YAML of
aliases, a component file of aliases, a recursive alias and very deep nesting are refused
before anything expands them, with exit 2 and a message naming the file; the read paths of
`job create`, `component create`, `online-endpoint create`, `schedule create` and
`python -m amlocal.validate` all go through the same check (amlocal/yamlsafe.py).

Before the fix the job bomb spun `job create` for minutes (the timeout below fails it), the
component bomb exhausted memory inside azure-ai-ml and the recursive and deep files ended in
a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Far longer than the refusal takes (well under a second after azure-ai-ml's import), far
# shorter than the minutes the unbounded walk took.
TIMEOUT = 60


def bomb(levels: int = 9, fan: int = 9) -> str:
    """`levels` anchors, each a list of `fan` aliases of the previous one: fan**levels nodes
    once expanded, in a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['x'] * fan)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


JOB_HEAD = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: echo hi
environment: azureml:env@latest
"""
COMPONENT_HEAD = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: c
type: command
command: echo hi
environment: azureml:env@latest
"""
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
jobs:
  a:
    component: ./component.yml
"""
RECURSIVE = JOB_HEAD + "tags: &t {a: [*t]}\n"
DEEP = JOB_HEAD + "tags: {a: " + "[" * 5000 + "]" * 5000 + "}\n"


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLOCAL_HOME": str(root / ".amlocal")}
    env["AMLOCAL_CACHE_DIR"] = str(root / "cache")
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def refused(r: subprocess.CompletedProcess[str], name: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr[-2000:])
    assert name in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]


def test_the_job_bomb_is_a_few_hundred_bytes() -> None:
    assert len(JOB_HEAD + bomb()) < 700


@pytest.mark.parametrize(
    "text,expect",
    [
        (JOB_HEAD + bomb(), "aliases are expanded"),
        (RECURSIVE, "recursive YAML alias"),
        (DEEP, "levels deep"),
    ],
    ids=["bomb", "recursive", "deep"],
)
def test_job_create_refuses(tmp_path: Path, text: str, expect: str) -> None:
    (tmp_path / "job.yml").write_text(text)
    r = run(tmp_path, "amlocal.cli", "job", "create", "-f", "job.yml")
    refused(r, "job.yml")
    assert expect in r.stderr


def test_a_component_bomb_named_by_a_pipeline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yml").write_text(PIPELINE)
    (tmp_path / "component.yml").write_text(COMPONENT_HEAD + bomb())
    r = run(tmp_path, "amlocal.cli", "job", "create", "-f", "pipeline.yml")
    refused(r, "component.yml")
    r = run(tmp_path, "amlocal.cli", "component", "create", "-f", "component.yml")
    refused(r, "component.yml")


def test_other_read_paths_refuse(tmp_path: Path) -> None:
    endpoint = tmp_path / "endpoints" / "endpoint.yml"
    endpoint.parent.mkdir()
    endpoint.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
        "name: e\nauth_mode: key\n" + bomb()
    )
    r = run(tmp_path, "amlocal.cli", "online-endpoint", "create", "-f", str(endpoint))
    refused(r, "endpoint.yml")
    schedule = tmp_path / "schedule.yml"
    schedule.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json\n"
        "name: s\ntrigger: {type: recurrence, frequency: day, interval: 1}\n"
        "create_job: ./job.yml\n"
    )
    (tmp_path / "job.yml").write_text(RECURSIVE)
    r = run(tmp_path, "amlocal.cli", "schedule", "create", "-f", "schedule.yml")
    refused(r, "job.yml")
    r = run(tmp_path, "amlocal.validate", "endpoints")
    refused(r, "endpoint.yml")
