"""A step's command as a process: its own process group, the code snapshot as working
directory, logs in user_logs/std_log.txt, a timeout and a cancel that stop the whole group.
What it runs is resolved by `amlocal.jobs.step_io`.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from amlocal import procs
from amlocal.jobs import environments
from amlocal.jobs import expressions as ex
from amlocal.jobs.step_io import LOG_NAME
from amlocal.jobs.warm import ARM_AFTER_S, ForkedStep, ForkServer, warm_argv
from amlocal.snapshot import materialize

if TYPE_CHECKING:
    from amlocal.jobs.step_io import Resolved
    from amlocal.workspace import Workspace


def base_env(bin_dir: Path) -> dict[str, str]:
    """The environment every step process starts from (its own variables go on top)."""
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env["PYTHONUNBUFFERED"] = "1"
    return env


FILE_OUTPUTS = {"uri_file", "boolean", "integer", "number", "string"}


class StepProcess:
    """A running step: its own process group, logs to user_logs/std_log.txt, cancellable."""

    def __init__(self, ws: Workspace, r: Resolved, env_vars: dict[str, str], bin_dir: Path) -> None:
        self.ws, self.r = ws, r
        jd = ws.job_dir(r.job_name)
        self.cwd = jd / "wd"
        self.log_path = jd / LOG_NAME
        if self.cwd.exists():
            shutil.rmtree(self.cwd)
        if r.code or r.includes:
            materialize(r.code, self.cwd, r.includes)
        else:
            self.cwd.mkdir(parents=True)
        (self.cwd / "outputs").mkdir(exist_ok=True)
        (self.cwd / "logs").mkdir(exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for out in r.io.outputs.values():
            p = Path(out["local_path"])
            if out["type"] in FILE_OUTPUTS:  # a control output is a file holding its value
                p.parent.mkdir(parents=True, exist_ok=True)
            else:
                p.mkdir(parents=True, exist_ok=True)
        self.bin_dir = bin_dir
        env = base_env(bin_dir)
        for name, value in r.io.input_values.items():
            if value is not None:
                env[f"AZURE_ML_INPUT_{name}"] = ex.format_value(value)
        for name, out in r.io.outputs.items():
            env[f"AZURE_ML_OUTPUT_{name}"] = out["local_path"]
        env.update(env_vars)
        env.update(r.environment_variables)
        self.bin_dir = environments.prepare_step(ws, bin_dir, r.command, self.cwd, env)
        self.env = env
        self.proc: subprocess.Popen[bytes] | ForkedStep | None = None
        self.timed_out = False
        self.warm = False
        self.pool: ForkServer | None = None
        self._lock = threading.Lock()

    def start(self, pool: ForkServer | None = None) -> None:
        """Start the command: in a warm interpreter from `pool` when it qualifies (see
        amlocal.jobs.warm), else as `bash -c COMMAND`."""
        with self._lock:
            self.pool = pool
            argv = warm_argv(self.r.command)
            if (
                pool is not None
                and argv is not None
                and not self.r.environment_variables
                and self.bin_dir == Path(sys.executable).parent
            ):
                self.proc = pool.take(argv, self.env, self.cwd, self.log_path)
                if self.proc is not None:
                    self.warm = True
                    return
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", self.r.command],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()

    def wait(self, cancel: threading.Event) -> int:
        """Wait for exit, killing the group on cancel or when `limits.timeout` passes."""
        assert self.proc is not None
        started = time.monotonic()
        deadline = started + self.r.timeout if self.r.timeout else None
        exited = _pidfd(self.proc)
        try:
            while True:
                code = self._wait_a_little(exited)
                if code is not None:
                    return code
                if self.pool is not None and time.monotonic() - started > ARM_AFTER_S:
                    self.pool.arm()
                    self.pool = None
                if cancel.is_set():
                    self.kill()
                elif deadline is not None and time.monotonic() > deadline:
                    self.timed_out = True
                    self.kill()
        finally:
            if exited is not None:
                os.close(exited)

    def _wait_a_little(self, exited: int | None) -> int | None:
        """The exit code, or None after at most 50 ms. A pidfd wakes us the moment the step
        exits: Popen.wait(timeout) sleep-polls with doubling sleeps, and a 45 ms child was
        seen exiting after 50.2 ms that way against 46.5 ms with the pidfd (median of 15)."""
        assert self.proc is not None
        if exited is None:
            try:
                return self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                return None
        select.select([exited], [], [], 0.05)
        return self.proc.poll()

    def kill(self) -> None:
        """SIGTERM the whole process group, SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        procs.stop_group(self.proc.pid, self.proc, procs.GENTLE)


def _pidfd(proc: subprocess.Popen[bytes] | ForkedStep) -> int | None:
    """A file descriptor that becomes readable when the step's process exits (Linux 5.3+);
    None elsewhere (macOS, old kernels) or for a warm step, whose wait is already an event."""
    if not isinstance(proc, subprocess.Popen) or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(proc.pid)
    except OSError:
        return None


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
