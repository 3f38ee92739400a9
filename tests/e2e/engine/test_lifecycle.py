"""Standalone command jobs, timeout, cancel from another process (no orphans), two jobs at
once, download and show."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from cli_support import Project

SLEEPER = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: >-
  echo $$ > ${{{{outputs.o}}}}/pid; sleep 300 & echo $! > ${{{{outputs.o}}}}/child; wait
environment: azureml:testenv@latest
experiment_name: lifecycle
outputs:
  o:
    type: uri_folder
{extra}
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_status(project: Project, name: str, statuses: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = project.json("job", "show", "-n", name)
        if job["status"] in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not reach {statuses}: {job['status']}")


def test_standalone_command_job_outputs_logs_and_download(project: Project) -> None:
    project.write(
        "src/hello.py",
        "import sys, pathlib\nprint('hello', sys.argv[1:])\n"
        "pathlib.Path('outputs/note.txt').write_text('kept')\n"
        "pathlib.Path(sys.argv[2], 'r.txt').write_text(sys.argv[1])\n",
    )
    project.write(
        "cmd.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python hello.py ${{inputs.n}} ${{outputs.result}}
        code: ./src
        environment: azureml:testenv@latest
        inputs:
          n: 7
        outputs:
          result:
            type: uri_folder
            path: azureml://datastores/workspaceblobstore/paths/custom/${{name}}/${{output_name}}
        """,
    )
    job, r = project.create("cmd.yml", "-n", "my-job", "--set", "inputs.nn=8")
    assert job["name"] == "my-job" and job["status"] == "Completed"
    # A misspelt input override runs (Azure ML takes it as a new input) but is named first.
    warning = r.stderr.splitlines()[0]
    assert warning.startswith("WARNING: --set inputs.nn:") and "'nn'" in warning, r.stderr
    assert "(its inputs: n)" in warning and "Did you mean 'n'?" in warning
    assert "hello ['7'" in r.stderr  # the log is streamed
    run_id = job["properties"]["mlflow.runId"]
    web = [line for line in r.stderr.splitlines() if line.startswith("Web View: ")]
    assert web and web[0].startswith("Web View: http://127.0.0.1:"), r.stderr
    assert web[0].endswith("/jobs/my-job"), r.stderr  # the job's page in `amlocal studio`
    run = [line for line in r.stderr.splitlines() if line.startswith("MLflow Run: ")]
    assert run and run[0].endswith(f"/runs/{run_id}") and "://127.0.0.1:" in run[0], r.stderr
    shown = project.run("job", "show", "-n", "my-job", "--web")
    assert web[0] in shown.stderr and run[0] in shown.stderr
    assert json.loads(shown.stdout)["name"] == "my-job"
    out = project.home / "datastores/workspaceblobstore/custom/my-job/result/r.txt"
    assert out.read_text() == "7"
    dl = project.root / "dl"
    project.run("job", "download", "-n", "my-job", "--all", "--download-path", str(dl))
    assert (dl / "named-outputs/result/r.txt").read_text() == "7"
    assert "hello" in (dl / "artifacts/user_logs/std_log.txt").read_text()
    assert (dl / "artifacts/outputs/note.txt").read_text() == "kept"
    r = project.run("job", "create", "-f", "cmd.yml", "-n", "my-job", check=False)
    assert r.returncode == 2 and "already exists" in r.stderr
    # `job stream`, as az ml's: the log on stdout and nothing else.
    r = project.run("job", "stream", "-n", "my-job")
    log = (project.home / "jobs/my-job/user_logs/std_log.txt").read_text()
    assert r.stdout == log and "hello ['7'" in log


def test_timeout_cancels_the_job_and_its_children(project: Project) -> None:
    project.write("slow.yml", SLEEPER.format(extra="limits:\n  timeout: 2\n"))
    job, r = project.create("slow.yml", check=False)
    assert r.returncode != 0
    assert job["status"] == "Canceled"
    assert "limits.timeout" in r.stderr or "limits.timeout" in json.dumps(job)
    child = int((Path(job["outputs"]["o"]["local_path"]) / "child").read_text())
    assert not _alive(child)


def test_cancel_from_another_process_leaves_no_orphans(project: Project) -> None:
    project.write("slow.yml", SLEEPER.format(extra=""))
    job = project.json("job", "create", "-f", "slow.yml")  # detached, returns at once
    assert job["status"] in ("NotStarted", "Running")
    name = job["name"]
    _wait_status(project, name, {"Running"})
    out = Path(project.home / "datastores/workspaceblobstore/azureml" / name / "o")
    deadline = time.monotonic() + 60
    while not (out / "child").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    shell, child = int((out / "pid").read_text()), int((out / "child").read_text())
    assert _alive(child)
    project.run("job", "cancel", "-n", name)
    final = _wait_status(project, name, {"Canceled", "Failed", "Completed"})
    assert final["status"] == "Canceled"
    deadline = time.monotonic() + 10
    while (_alive(child) or _alive(shell)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child) and not _alive(shell)


def test_two_pipelines_at_once(project: Project) -> None:
    project.write(
        "src/s.py",
        "import sys, time, pathlib\ntime.sleep(1)\n"
        "pathlib.Path(sys.argv[2], 'v').write_text(sys.argv[1])\n",
    )
    project.write(
        "p.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: twice
        settings:
          default_compute: azureml:cpu-cluster
        inputs:
          v: x
        jobs:
          a:
            type: command
            code: ./src
            command: python s.py ${{inputs.v}} ${{outputs.o}}
            environment: azureml:testenv@latest
            inputs:
              v: ${{parent.inputs.v}}
            outputs:
              o:
                type: uri_folder
        """,
    )
    j1 = project.json("job", "create", "-f", "p.yml", "--set", "inputs.v=one")
    j2 = project.json("job", "create", "-f", "p.yml", "--set", "inputs.v=two")
    r = project.run("job", "stream", "-n", j1["name"])
    assert "Completed" in r.stderr
    f1 = _wait_status(project, j1["name"], {"Completed", "Failed", "Canceled"})
    f2 = _wait_status(project, j2["name"], {"Completed", "Failed", "Canceled"})
    assert f1["status"] == f2["status"] == "Completed"
    vals = {Path(j["jobs"]["a"]["outputs"]["o"]["local_path"], "v").read_text() for j in (f1, f2)}
    assert vals == {"one", "two"}
    names = [j["name"] for j in project.json("job", "list")]
    assert set(names) == {j1["name"], j2["name"]}


def test_ctrl_c_cancels_the_streamed_job_and_its_processes(project: Project) -> None:
    import signal
    import subprocess

    from cli_support import AMLOCAL

    project.write("slow.yml", SLEEPER.format(extra=""))
    log = (project.root / "cli.log").open("w")
    cli = subprocess.Popen(
        [*AMLOCAL, "job", "create", "-f", "slow.yml", "--stream", "-n", "ctrlc"],
        cwd=project.root,
        env=project.env,
        stdout=log,
        stderr=log,
        # As from a terminal: a suite started in the background (`cmd &` in a script)
        # passes SIGINT down ignored, and Python keeps an ignored SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out = project.home / "datastores/workspaceblobstore/azureml/ctrlc/o"
    deadline = time.monotonic() + 60
    while not (out / "child").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    child = int((out / "child").read_text())
    assert _alive(child)
    cli.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends to the CLI
    assert cli.wait(timeout=30) != 0
    assert project.json("job", "show", "-n", "ctrlc")["status"] == "Canceled"
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_environment_pins_checked_and_isolated_venv(project: Project) -> None:
    project.write(
        "pinned.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
        name: pinned
        image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
        conda_file: conda.yml
        """,
    )
    project.write(
        "conda.yml",
        """\
        name: pinned
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - pip
          - pip:
              - numpy==0.0.1
        """,
    )
    project.run("environment", "create", "-f", "pinned.yml")
    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python -c "import sys; print('prefix', sys.prefix)"
        environment: azureml:pinned@latest
        """,
    )
    # By default the environment is built; a build failure fails the step with uv's own
    # message and the environment named (no silent fallback to the project venv).
    project.create("job.yml", "--name", "unbuildable", check=False)
    shown = project.json("job", "show", "-n", "unbuildable")
    assert shown["status"] == "Failed"
    assert "environment pinned:1: building its venv failed" in shown["error"]["message"]
    assert "numpy==0.0.1" in shown["error"]["message"]
    # AMLOCAL_ENVIRONMENTS=project: today's fast path, a mismatch is named, not silent.
    project.env["AMLOCAL_ENVIRONMENTS"] = "project"
    job, r = project.create("job.yml")
    del project.env["AMLOCAL_ENVIRONMENTS"]
    assert job["status"] == "Completed"
    assert "numpy==0.0.1 is declared but" in r.stderr
    # Isolated: a venv per environment content hash even when the project venv would do.
    project.write("conda.yml", "name: bare\ndependencies:\n  - python=3.11\n")
    project.run("environment", "create", "-f", "pinned.yml")
    job, r = project.create("job.yml", "--isolate-environments")
    assert job["status"] == "Completed"
    assert "prefix /" in r.stderr and f"prefix {sys.prefix}\n" not in r.stderr


def test_a_killed_runner_leaves_its_steps_failed_not_running(project: Project) -> None:
    """SIGKILL of the job's runner: showing the pipeline or a step reaps both (#20)."""
    import signal

    from amlocal.workspace import Workspace

    project.write(
        "pipe.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: lifecycle
        settings:
          default_compute: azureml:cpu-cluster
        jobs:
          sleeper:
            type: command
            command: >-
              echo $$ > ${{outputs.o}}/pid; sleep 300 & echo $! > ${{outputs.o}}/child; wait
            environment: azureml:testenv@latest
            outputs:
              o:
                type: uri_folder
        """,
    )
    name = project.json("job", "create", "-f", "pipe.yml")["name"]
    deadline = time.monotonic() + 60
    step: dict = {}
    while time.monotonic() < deadline:
        step = project.steps(name).get("sleeper", {})
        if step.get("status") == "Running":
            break
        time.sleep(0.3)
    assert step.get("status") == "Running", step
    out = Path(project.home / "datastores/workspaceblobstore/azureml" / step["name"] / "o")
    while not (out / "child").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    runner = Workspace(project.home).store.get("job", name)["_runner_pid"]
    os.kill(runner, signal.SIGKILL)
    try:
        while _alive(runner) and time.monotonic() < deadline:
            time.sleep(0.1)
        shown = project.json("job", "show", "-n", step["name"])
        assert shown["status"] == "Failed" and "runner" in shown["error"]["message"]
        assert project.json("job", "show", "-n", name)["status"] == "Failed"
        assert project.steps(name)["sleeper"]["status"] == "Failed"
    finally:  # the step's own processes were the runner's children: end them here
        for f in ("child", "pid"):
            try:
                os.kill(int((out / f).read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
