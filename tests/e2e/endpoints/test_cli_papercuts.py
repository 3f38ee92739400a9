"""Issue 31, item 5: the CLI helps a person the way az does, without changing what scripts
read on stdout. Each papercut has its test here, against real subprocesses, a real store and
real endpoints on 127.0.0.1 (the endpoint-fidelity fixtures)."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import AMLOCAL, Project

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "endpoint-fidelity"
JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: mkdir -p ${{outputs.out}} && echo hi > ${{outputs.out}}/hi.txt
outputs:
  out:
    type: uri_folder
environment: azureml:AzureML-sklearn-1.5@latest
"""


def _done(p: Project, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = p.json("job", "show", "-n", name)
        if job["status"] in ("Completed", "Failed", "Canceled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not end")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("papercuts")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    p = Project(root)
    p.env["AMLOCAL_ENVIRONMENTS"] = "project"  # curated envs run in the project venv: offline
    p.write("job.yml", JOB)
    try:
        yield p
    finally:
        p.run("online-endpoint", "delete", "-n", "fid-online", "--yes", check=False)


def test_a_misspelt_group_or_verb_gets_did_you_mean(project: Project) -> None:
    r = project.run("jbo", "list", check=False)
    assert r.returncode == 2
    assert "The most similar choice to 'jbo' is:\n\tjob\n" in r.stderr
    r = project.run("online-endpoint", "invok", "-n", "x", check=False)
    assert r.returncode == 2 and "The most similar choice to 'invok' is:\n\tinvoke" in r.stderr
    r = project.run("job", "zzzzzz", check=False)  # nothing close: no suggestion
    assert r.returncode == 2 and "most similar" not in r.stderr


def test_help_uses_the_right_article(project: Project) -> None:
    assert "Create an environment asset" in project.run("environment", "-h").stdout
    assert "Create a data asset" in project.run("data", "-h").stdout


def _on_a_terminal(project: Project, *args: str) -> str:
    """`amlocal <args>`'s standard output when it is a terminal, as a person sees it."""
    master, slave = pty.openpty()
    try:
        subprocess.run(
            [*AMLOCAL, *args], cwd=project.root, env=project.env, stdout=slave, timeout=180
        )
    finally:
        os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: everything was read
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return out.decode().replace("\r\n", "\n")


def test_online_invoke_prints_json_and_table_keeps_traffic(project: Project) -> None:
    project.run("online-endpoint", "create", "-f", "online/endpoint.yml", "-o", "none")
    project.run(
        "online-deployment", "create", "-f", "online/curated.yml", "--all-traffic", "-o", "none"
    )
    invoke = ("online-endpoint", "invoke", "-n", "fid-online", "-r", "online/request.json")
    answer = json.loads(_on_a_terminal(project, *invoke))
    assert isinstance(answer, list) and len(answer) == 2  # the JSON, not "\"[...]\""
    # into a pipe, exactly what az prints (a JSON-encoded string), so az scripts run unchanged
    assert json.loads(json.loads(project.run(*invoke).stdout)) == answer
    table = project.run("online-endpoint", "show", "-n", "fid-online", "-o", "table").stdout
    heading, _, row = table.splitlines()[:3]
    assert "Traffic" in heading and "curated=100" in row, table
    listed = project.run("online-endpoint", "list", "-o", "table").stdout
    assert "curated=100" in listed
    # JSON and queries are unchanged: traffic stays an object there.
    assert project.json("online-endpoint", "show", "-n", "fid-online")["traffic"] == {
        "curated": 100
    }


def test_detached_job_hints_list_table_and_download(project: Project) -> None:
    r = project.run("job", "create", "-f", "job.yml")
    job = json.loads(r.stdout)  # stdout stays the job's JSON
    assert f"amlocal job stream -n {job['name']}" in r.stderr
    quiet = project.run("job", "create", "-f", "job.yml", "--only-show-errors")
    assert quiet.stderr == "" and json.loads(quiet.stdout)["name"]
    assert _done(project, job["name"])["status"] == "Completed"
    _done(project, json.loads(quiet.stdout)["name"])

    table = project.run("job", "list", "-o", "table").stdout.splitlines()
    assert "Created" in table[0] and "Duration" in table[0], table[0]
    row = next(line for line in table if job["name"] in line)
    created = job["creation_context"]["created_at"][:19].replace("T", " ")
    assert created in row
    assert any(cell.endswith("s") and cell[:-1].replace(".", "").isdigit() for cell in row.split())

    dest = project.root / "dl"
    r = project.run("job", "download", "-n", job["name"], "--output-name", "out", "-p", str(dest))
    assert f"Downloaded output 'out' of {job['name']} to {dest / 'named-outputs' / 'out'}" in (
        r.stderr
    )
    assert (dest / "named-outputs" / "out" / "hi.txt").read_text() == "hi\n"
    r = project.run("job", "download", "-n", job["name"], "-p", str(dest))
    assert f"to {dest / 'artifacts'}" in r.stderr and r.stdout == ""


def test_batch_invoke_hints_and_model_times_are_iso(project: Project) -> None:
    reg = project.json(
        "model", "create", "--name", "fid-file-model", "--version", "1",
        "--path", "model-src/weights.json", "--type", "custom_model",
    )  # fmt: skip
    shown = project.json("model", "show", "-n", "fid-file-model", "--version", "1")
    for record in (reg, shown):
        created = dt.datetime.fromisoformat(record["creation_context"]["created_at"])
        assert created.tzinfo is not None
        assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 600
    project.run("batch-endpoint", "create", "-f", "batch/endpoint.yml", "-o", "none")
    project.run("batch-deployment", "create", "-f", "batch/file-model.yml", "-o", "none")
    r = project.run("batch-endpoint", "invoke", "-n", "fid-batch", "-d", "file-model",
                    "--input", "batch/data")  # fmt: skip
    job = json.loads(r.stdout)
    assert f"amlocal job stream -n {job['name']}" in r.stderr
    assert f"amlocal job download -n {job['name']} --output-name score" in r.stderr
    assert _done(project, job["name"])["status"] == "Completed"
    # The hint's command works as printed.
    dest = project.root / "scored"
    project.run("job", "download", "-n", job["name"], "--output-name", "score", "-p", str(dest))
    assert list(dest.rglob("predictions.csv"))


def test_make_batch_writes_predictions_inside_the_project(tmp_path: Path) -> None:
    """scripts/batch-deploy.sh (what `make batch` runs) with the fake az of the workflow
    tests and no OUTPUT_DIR: the predictions land under ./batch-output/<job>, in the folder
    it ran from, not in a temporary folder elsewhere."""
    import os

    fakes = REPO / "tests" / "fakes"
    work = tmp_path / "project"
    shutil.copytree(REPO / "data" / "diabetes-batch", work / "data" / "diabetes-batch")
    shutil.copytree(
        REPO / "endpoints" / "batch" / "diabetes", work / "endpoints" / "batch" / "diabetes"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MAKE"))},
        "PATH": f"{fakes}:{os.environ['PATH']}",
        "FAKE_AZ_STATE": str(tmp_path / "state.json"),
        "FAKE_AZ_LOG": str(tmp_path / "az.log"),
        "AML": "az ml",
        "POLL_SECONDS": "0",
    }
    env.pop("OUTPUT_DIR", None)
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "batch-deploy.sh"), "diabetes-batch",
         "endpoints/batch/diabetes", "endpoints/batch/diabetes/deployment.yml",
         "data/diabetes-batch"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (predictions,) = (work / "batch-output").rglob("predictions.csv")
    assert (
        f"in batch-output/{predictions.relative_to(work / 'batch-output')}" in r.stderr + r.stdout
    )
    assert "batch-output/" in (REPO / ".gitignore").read_text().split()
