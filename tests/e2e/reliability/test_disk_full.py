"""A full disk (issue 32, item 4), made honestly: the workspace lives on a small tmpfs
mounted for the test (root only; skipped otherwise), filled by a file until ENOSPC, so SQLite
and every write meet the kernel's real "No space left on device".

With the disk full, commands answer with a clear error (no traceback, no advice to move the
intact store or registry aside), a submission leaves the whole job or nothing (never a
pipeline NotStarted for ever), and a job whose runner died of it says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE_MB = 24


def _mount(path: Path) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(path)],
        capture_output=True,
    )
    return r.returncode == 0


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    if not _mount(mnt):
        pytest.skip("needs root to mount a small tmpfs (a real full disk)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path) -> Path:
    """Write until the kernel says ENOSPC."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    return filler


class Project:
    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.env = {**os.environ, "AMLOCAL_HOME": str(root / ".amlocal")}
        self.env["AMLOCAL_CACHE_DIR"] = str(cache)
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def write(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amlocal.cli", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )


def clear(r: subprocess.CompletedProcess[str]) -> None:
    """A clear answer: success, or an error saying the disk is full; never a traceback nor
    advice that would throw the intact store away."""
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "aside" not in r.stderr and "make clean" not in r.stderr, r.stderr
    if r.returncode != 0:
        assert "full" in r.stderr, r.stderr


COMMAND_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
code: ./src
command: {command}
environment: azureml:testenv@latest
outputs:
  o: {{type: uri_folder}}
"""


@pytest.fixture()
def project(disk: Path, tmp_path: Path) -> Project:
    p = Project(disk / "proj", tmp_path / "cache")
    p.write(
        "env.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
        name: testenv
        image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
        """,
    )
    p.write("src/a.py", "print('a')\n")
    p.write("model/w.txt", "weights\n")
    p.write(
        "model.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
        name: m
        path: ./model
        """,
    )
    p.write(
        "pipeline.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        settings: {default_compute: azureml:cpu-cluster}
        jobs:
          a:
            type: command
            code: ./src
            command: echo a
            environment: azureml:testenv@latest
          b:
            type: command
            code: ./src
            command: echo b
            environment: azureml:testenv@latest
        """,
    )
    p.write(
        "big.yml",
        COMMAND_JOB.format(command=f"head -c {2 * SIZE_MB}M /dev/zero > ${{{{outputs.o}}}}/big"),
    )
    for args in (
        ("environment", "create", "-f", "env.yml"),
        ("model", "create", "-f", "model.yml"),
    ):
        r = p.run(*args)
        assert r.returncode == 0, r.stderr
    assert p.run("job", "validate", "-f", "pipeline.yml").returncode == 0  # plan cached
    return p


def jobs(p: Project) -> list[dict]:
    r = p.run("job", "list")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_full_disk_gets_clear_errors_and_true_records(project: Project, disk: Path) -> None:
    filler = fill(disk)
    for args in (("job", "list"), ("model", "list"), ("model", "show", "-n", "m", "-v", "1")):
        clear(project.run(*args))
    r = project.run("job", "create", "-f", "pipeline.yml")
    clear(r)
    assert r.returncode != 0
    filler.unlink()
    listed = jobs(project)
    assert [j for j in listed if j["status"] == "NotStarted"] == [], listed
    r = project.run("model", "list")
    assert r.returncode == 0 and [m["name"] for m in json.loads(r.stdout)] == ["m"], r.stderr


def test_a_job_that_fills_the_disk_is_recorded_as_such(project: Project, disk: Path) -> None:
    """A step fills the disk: the job ends Failed saying the disk is full (before: the
    record stayed Running, later blamed on "the job's runner process exited")."""
    r = project.run("job", "create", "-f", "big.yml")
    clear(r)
    name = json.loads(r.stdout)["name"]
    deadline = time.monotonic() + 120
    job: dict = {}
    while time.monotonic() < deadline:
        shown = project.run("job", "show", "-n", name)
        clear(shown)
        if shown.returncode == 0:
            job = json.loads(shown.stdout)
            if job["status"] in ("Failed", "Completed"):
                break
        time.sleep(1)
    assert job.get("status") == "Failed", job
    message = json.dumps(job.get("error") or {})
    assert "full" in message or "No space left" in message, message
