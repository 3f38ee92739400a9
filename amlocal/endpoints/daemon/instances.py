"""Deployment instances: stock azmlinfsrv processes, their probes and their restarts.

An instance is `python -m amlocal.endpoints.instance.loopback` (azmlinfsrv bound to 127.0.0.1) in its
own session, so stopping it signals gunicorn's master and workers together. Probes are
`GET /` on the instance, azmlinfsrv's liveness route, as Azure's probes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlocal import procs
from amlocal.endpoints.instance.loopback import SOCKET_ENV
from amlocal.ports import free_port

# Azure's probe defaults (reference-yaml-deployment-managed-online).
PROBE_DEFAULTS = {
    "initial_delay": 10,
    "period": 10,
    "timeout": 2,
    "success_threshold": 1,
    "failure_threshold": 30,
}


def probe_settings(spec: dict[str, Any] | None) -> dict[str, float]:
    return {k: float((spec or {}).get(k) or v) for k, v in PROBE_DEFAULTS.items()}


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-65536:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# The header that proves a request comes from the endpoint's front door (or its probes).
TOKEN_HEADER = "x-amlocal-instance"
TOKEN_ENV = "AMLOCAL_INSTANCE_TOKEN"


async def http_get_ok(port: int, path: str = "/", timeout: float = 2.0, token: str = "") -> bool:
    """One probe: GET on the instance answered with 200 within `timeout`."""
    try:
        return await asyncio.wait_for(_get_status(port, path, token), timeout) == b"200"
    except (TimeoutError, OSError):
        return False


async def _get_status(port: int, path: str, token: str = "") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        auth = f"{TOKEN_HEADER}: {token}\r\n" if token else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
        line = await reader.readline()
        parts = line.split(b" ", 2)
        return parts[1] if len(parts) > 1 else b""
    finally:
        writer.close()


@dataclass
class Instance:
    """One azmlinfsrv process of a deployment."""

    deployment: str
    index: int
    runtime: dict[str, Any]
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    restarts: int = 0
    started_at: float = 0.0
    failures: int = field(default=0)
    agent: Any = None  # amlocal.endpoints.collector.Agent, with data_collector
    token: str = ""  # the endpoint's instance token (keys.json): required on every request
    socket_dir: str = ""  # where the front door's Unix socket to the instance goes, if any
    socket: str = ""  # that socket, once started (SOCKET_ENV)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        rt = self.runtime
        self.port = free_port()
        env = {**os.environ, **rt.get("environment_variables", {})}
        env.setdefault("WORKER_COUNT", str(rt["workers"]))
        env.update(
            AZUREML_MODEL_DIR=rt["model_dir"],
            AML_APP_ROOT=rt["code_dir"],
            AZUREML_ENTRY_SCRIPT=rt["entry_script"],
            # gunicorn 26 opens ~/.gunicorn/gunicorn.ctl; instances must not share it.
            GUNICORN_CMD_ARGS="--no-control-socket",
            PYTHONUNBUFFERED="1",
        )
        env.pop("AMLOCAL_CONTROL", None)
        if rt.get("pythonpath"):  # an environment's own venv: amlocal's instance module only
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (rt["pythonpath"], env.get("PYTHONPATH")) if p
            )
            venv_bin = str(Path(rt["python"]).parent)  # `python`, `pip` in score.py: the venv's
            env["PATH"] = os.pathsep.join(p for p in (venv_bin, env.get("PATH")) if p)
            env["VIRTUAL_ENV"] = str(Path(venv_bin).parent)
        if rt.get("data_collector"):  # its agent first: the Collector finds it through env
            from amlocal.endpoints.collector import Agent

            self.agent = Agent(
                rt["data_collector"], f"{self.deployment}-{self.index}", self.log_path
            )
            self.agent.start()
            env.update(self.agent.env())
        env[TOKEN_ENV] = self.token
        self.socket = f"{self.socket_dir}/{self.port}.sock" if self.socket_dir else ""
        if self.socket:
            env[SOCKET_ENV] = self.socket
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- amlocal: starting instance {self.index} on port {self.port}\n".encode())
            for note in [f"python {rt['python']}", *rt.get("environment_notes", ())]:
                log.write(f"--- amlocal: {note}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    rt["python"],
                    "-m",
                    "amlocal.endpoints.instance.loopback",
                    "--entry_script",
                    rt["entry_script"],
                    "--model_dir",
                    rt["model_dir"],
                    "--port",
                    str(self.port),
                ],
                cwd=rt["code_dir"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ready = False
        self.failures = 0
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        self.ready = False
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # A model server keeps no state worth a graceful drain (gunicorn workers take
            # ~1 s to exit on SIGQUIT): a short grace, then SIGKILL.
            procs.stop_group(self.proc.pid, self.proc, ((signal.SIGQUIT, 0.3),))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None
        if self.agent is not None:
            self.agent.stop()

    async def wait_ready(self) -> str | None:
        """Probe until the readiness probe passes: None, or why the instance failed.

        Probing starts at once (Azure waits `initial_delay` first); a process that exits
        fails immediately, with its log tail, instead of after the whole probe budget.
        """
        s = probe_settings(self.runtime.get("readiness_probe"))
        deadline = self.started_at + s["initial_delay"] + s["period"] * s["failure_threshold"]
        successes = 0
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                return f"instance {self.index} exited with code {code}:\n{tail(self.log_path)}"
            if await http_get_ok(self.port, timeout=s["timeout"], token=self.token):
                successes += 1
                if successes >= s["success_threshold"]:
                    self.ready = True
                    return None
                await asyncio.sleep(min(s["period"], 1.0))
            else:
                successes = 0
                await asyncio.sleep(0.05)
        return f"instance {self.index} failed its readiness probe:\n{tail(self.log_path)}"
