"""The resident CLI (amlocal.resident): commands fork from one warm server, and behave as a
command run in its own process does: same output, exit status, environment, folder, signals;
a dead caller takes its command with it; a module the caller's folder would shadow, or a
folder others may enter, means no server; `workspace status|stop` name and stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from cli_support import AMLOCAL, ENV_YML, Project, wait_until

SLEEPER = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: sleep 3600
environment: azureml:testenv@latest
"""


def _wait(cond, timeout: float = 60.0):  # noqa: ANN001
    return wait_until(cond, timeout, every=0.1)


@pytest.fixture()
def served(tmp_path: Path) -> tuple[Project, Path]:
    """A project whose commands use a server of their own (its folder, with a line per
    command in its log); the first command starts it."""
    folder = tmp_path / "res"
    p = Project(tmp_path / "proj")
    p.root.mkdir()
    p.env.update(AMLOCAL_RESIDENT_DIR=str(folder), AMLOCAL_RESIDENT_DEBUG="1")
    p.env.pop("AMLOCAL_RESIDENT", None)
    p.write("env.yml", ENV_YML)
    p.run("model", "list")  # runs in its own process and starts the server
    _wait(lambda: list(folder.glob("*.sock")) and list(folder.glob("*.pid")))
    yield p, folder
    for pidfile in folder.glob("*.pid"):
        try:
            os.kill(json.loads(pidfile.read_text())["pid"], signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def _server(folder: Path) -> psutil.Process:
    return psutil.Process(json.loads(next(folder.glob("*.pid")).read_text())["pid"])


def _served(folder: Path) -> int:
    """How many commands the server has run (its log's line per command)."""
    return sum(" exited " in line for line in next(folder.glob("*.log")).read_text().splitlines())


def _both(p: Project, *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    alone = {**p.env, "AMLOCAL_RESIDENT": "0"}
    own = subprocess.run([*AMLOCAL, *args], cwd=p.root, env=alone, capture_output=True, text=True)
    return own, p.run(*args, check=False)


def test_a_forked_command_answers_as_its_own_process_would(served: tuple[Project, Path]) -> None:
    p, folder = served
    before = _served(folder)
    # the caller's folder (a relative -f), environment (AMLOCAL_HOME) and output
    created = json.loads(p.run("environment", "create", "-f", "env.yml").stdout)
    assert created["name"] == "testenv"
    for args in (
        ("environment", "list", "--query", "[].name", "-o", "tsv"),
        ("model", "show", "-n", "nope", "-v", "1"),  # an error: exit status and message
        ("job", "crate", "-f", "x.yml"),  # argparse's usage and hint, exit 2
        ("model", "list", "-o", "table"),
    ):
        own, forked = _both(p, *args)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            own.returncode,
            own.stdout,
            own.stderr,
        ), args
    assert _served(folder) == before + 5
    other = {**p.env, "AMLOCAL_HOME": str(p.root / "other")}
    r = subprocess.run([*AMLOCAL, "environment", "list"], cwd=p.root, env=other,
                       capture_output=True, text=True)  # fmt: skip
    assert json.loads(r.stdout) == [] and _served(folder) == before + 6


def test_signals_reach_the_command_and_a_killed_caller_takes_it_along(
    served: tuple[Project, Path],
) -> None:
    p, folder = served
    p.run("environment", "create", "-f", "env.yml")
    p.write("sleep.yml", SLEEPER)
    server = _server(folder)

    def status(name: str) -> str:
        return str(json.loads(p.run("job", "show", "-n", name).stdout)["status"])

    def streamed(name: str) -> tuple[subprocess.Popen[str], psutil.Process]:
        cli = subprocess.Popen(
            [*AMLOCAL, "job", "create", "-f", "sleep.yml", "--stream", "-n", name],
            cwd=p.root,
            env=p.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # as from a terminal (a suite started in the background has SIGINT ignored)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert cli.stderr is not None
        assert cli.stderr.readline().startswith("RunId:")
        (command,) = _commands(server)
        _wait(lambda: status(name) == "Running")
        return cli, command

    try:
        # Ctrl-C: the command cancels its job, as in its own process
        cli, _ = streamed("ctrlc")
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=60)
        assert cli.returncode == 1 and "Status: Canceled" in err, (cli.returncode, err)
        assert status("ctrlc") == "Canceled"

        # kill -9 of the caller: its command goes with it
        cli, command = streamed("killed")
        cli.kill()
        cli.wait()
        _wait(lambda: not command.is_running() or command.status() == psutil.STATUS_ZOMBIE, 10)

        # a detached job's runner: forked too, in a session of its own
        p.run("job", "create", "-f", "sleep.yml", "-n", "detached")
        _wait(lambda: status("detached") == "Running")
        (runner,) = [c for c in server.children() if os.getsid(c.pid) == c.pid]
        assert "amlocal" in " ".join(runner.cmdline())
    finally:
        for name in ("killed", "detached"):
            p.run("job", "cancel", "-n", name, check=False)
    _wait(lambda: status("detached") == "Canceled")


def _commands(server: psutil.Process) -> list[psutil.Process]:
    """The server's children that run a caller's command (the runner leads a session)."""
    return [c for c in server.children() if c.is_running() and os.getsid(c.pid) != c.pid]


def test_a_module_in_the_callers_folder_means_no_server(served: tuple[Project, Path]) -> None:
    """`python -m amlocal.cli` puts the working folder first on sys.path: a module there
    shadows the server's copy, so the command runs in its own process and imports it."""
    p, folder = served
    p.write("mlflow.py", "raise SystemExit('the project folder mlflow.py was imported')\n")
    before = _served(folder)
    own, forked = _both(p, "model", "list")
    assert "the project folder mlflow.py was imported" in own.stderr
    assert (forked.returncode, forked.stderr) == (own.returncode, own.stderr)
    assert _served(folder) == before
    assert "shadows a module" in next(folder.glob("*.log")).read_text()


def test_a_folder_others_may_enter_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    p = Project(tmp_path / "proj")
    p.root.mkdir()
    p.env["AMLOCAL_RESIDENT_DIR"] = str(folder)
    p.env.pop("AMLOCAL_RESIDENT", None)
    for _ in range(2):
        assert json.loads(p.run("model", "list").stdout) == []
    time.sleep(1)
    assert list(folder.iterdir()) == []


def test_workspace_status_names_the_server_and_stop_stops_it(served: tuple[Project, Path]) -> None:
    p, folder = served
    server = _server(folder)
    r = p.run("workspace", "status")
    assert json.loads(r.stdout) == []
    assert f"resident CLI server runs (pid {server.pid}" in r.stderr
    r = p.run("workspace", "stop")
    assert f"Stopped amlocal's resident CLI server (pid {server.pid})" in r.stderr
    server.wait(timeout=30)
    assert not list(folder.glob("*.sock")) and not list(folder.glob("*.pid"))
    assert json.loads(p.run("model", "list").stdout) == []  # in its own process, and starts one
    _wait(lambda: list(folder.glob("*.pid")))


def test_the_server_carries_no_workspace_of_its_first_caller(
    served: tuple[Project, Path],
) -> None:
    """The server is every project's: before, it kept the AMLOCAL_HOME of the command that
    started it, and a check for processes left behind by that project found it."""
    p, folder = served
    environ = _server(folder).environ()
    assert "AMLOCAL_HOME" not in environ, environ.get("AMLOCAL_HOME")
    # Its commands still run in their own workspace: what a forked one wrote is there.
    p.run("environment", "create", "-f", "env.yml")
    own, forked = _both(p, "environment", "list")
    assert forked.returncode == 0 and forked.stdout == own.stdout
    assert "testenv" in forked.stdout
