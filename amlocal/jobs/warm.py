"""Warm starts: pipeline steps of the form `python script.py ...` start as forks of an
interpreter that has already imported MLflow.

Every Azure ML step logs with MLflow, and importing it (with its SQL store and scikit-learn)
costs a fresh interpreter about 3 s: most of a small step's run time, paid again by every step
of a chain. So while a pipeline runs, one server process imports the modules in
AMLOCAL_PRELOAD once, then forks a child per qualifying step, the pattern of Python's own
multiprocessing "forkserver". The child is still one new process per step, in its own
session and process group, timed out, cancelled and killed exactly as a cold one; it takes
the step's environment, working directory, argv and log file, reseeds NumPy's global random
state (a fork would otherwise share it), runs the script as `__main__` with runpy, and exits
through the normal interpreter shutdown (threads joined, atexit handlers run).

A step starts cold (`bash -c COMMAND`, as always) unless its command is a plain
`python FILE.py ARGS` with nothing for a shell to expand, it runs in amlocal's own venv, and
it sets no `environment_variables` of its own (those may matter at import time, e.g. thread
counts). The server starts only once a step has run for ARM_AFTER_S (quick steps cannot
gain) or when the engine itself needs MLflow first. AMLOCAL_WARM_START=0 turns it off.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from amlocal import procs

DEFAULT_PRELOAD = "mlflow,mlflow.store.tracking.sqlalchemy_store,sklearn"
ARM_AFTER_S = 0.5


# -- the server (runs in its own interpreter) -------------------------------------------------
def serve() -> None:
    """Preload, then fork one child per request line on stdin; report on stdout."""
    import importlib

    for name in filter(None, os.environ.get("AMLOCAL_PRELOAD", DEFAULT_PRELOAD).split(",")):
        try:
            importlib.import_module(name.strip())
        except Exception:  # a step that needs it fails (or not) on its own import
            pass
    out = os.fdopen(os.dup(1), "w", buffering=1)
    buf = b""
    eof = False
    children = 0
    while not eof or children:
        readable, _, _ = select.select([] if eof else [0], [], [], 0.05)
        if readable:
            chunk = os.read(0, 65536)
            eof = not chunk
            buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            pid = os.fork()
            if pid == 0:
                out.close()
                _child(json.loads(line))  # raises SystemExit: the child's normal exit
            children += 1
            out.write(json.dumps({"pid": pid}) + "\n")
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children = 0
                break
            if pid == 0:
                break
            children -= 1
            out.write(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")


def _child(step: dict[str, Any]) -> None:
    os.setsid()
    os.chdir(step["cwd"])
    os.environ.clear()
    os.environ.update(step["env"])
    log = os.open(step["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(devnull)
    if "numpy.random" in sys.modules:  # `random` reseeds itself after a fork; NumPy does not
        sys.modules["numpy.random"].seed()
    script = step["argv"][0]
    sys.argv = list(step["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    import runpy

    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # the traceback a cold `python script.py` prints
        import traceback

        tb, own = exc.__traceback__, os.path.abspath(script)
        while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != own:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
        raise SystemExit(130 if isinstance(exc, KeyboardInterrupt) else 1) from None
    raise SystemExit(0)


# -- the engine's side ------------------------------------------------------------------------
# Anything a shell would expand or interpret makes a command ineligible.
_SHELL_SYNTAX = re.compile(r"[$`*?\[\]{}~;&|<>()!#\n\\]")


def warm_argv(command: str) -> list[str] | None:
    """The script argv of a plain `python FILE.py ARGS` command, else None."""
    if _SHELL_SYNTAX.search(command):
        return None
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if len(argv) < 2 or argv[0] not in ("python", "python3") or not argv[1].endswith(".py"):
        return None
    return argv[1:]


def enabled() -> bool:
    return os.environ.get("AMLOCAL_WARM_START", "1") != "0"


class ForkedStep:
    """A step forked by the server: the part of Popen that StepProcess uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._done = threading.Event()

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
        assert self.returncode is not None
        return self.returncode


class ForkServer:
    """One warm interpreter per pipeline run, started by `arm`, stopped by `close`."""

    def __init__(self, base_env: dict[str, str], bin_dir: Path, log_dir: Path) -> None:
        self.base_env = base_env
        self.python = str(bin_dir / "python")
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._pids: list[int] = []
        self._got_pid = threading.Condition(self._lock)
        self._steps: dict[int, ForkedStep] = {}
        self._early: dict[int, int] = {}  # exits reported before the step was registered
        self._dead = False
        self._take_lock = threading.Lock()  # one request in flight: pids answer in order

    def arm(self) -> None:
        with self._lock:
            if self.proc is not None or self._dead:
                return
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / f"server-{os.getpid()}.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    [self.python, "-c", "from amlocal.jobs.warm import serve; serve()"],
                    env=self.base_env,
                    cwd=self.log_dir,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                )
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self._lock:
                if "pid" in msg:
                    self._pids.append(msg["pid"])
                    self._got_pid.notify_all()
                elif msg["exit"] in self._steps:
                    self._steps.pop(msg["exit"])._exited(msg["code"])
                else:
                    self._early[msg["exit"]] = msg["code"]
        with self._lock:  # the server died: its children cannot be waited for any more
            self._dead = True
            self._got_pid.notify_all()
            for pid, step in self._steps.items():
                procs.stop_group(pid)
                step._exited(-9)
            self._steps.clear()

    def take(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedStep | None:
        """Fork the step from the server (waiting for it to finish preloading, which is
        further on than a cold start would be); None when not armed or gone."""
        request = json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)})
        with self._take_lock, self._lock:
            if self.proc is None or self._dead or self.proc.stdin is None:
                return None
            try:
                self.proc.stdin.write(request.encode() + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                return None
            while not self._pids and not self._dead:
                self._got_pid.wait()
            if not self._pids:
                return None
            step = ForkedStep(self._pids.pop(0))
            if step.pid in self._early:
                step._exited(self._early.pop(step.pid))
            else:
                self._steps[step.pid] = step
            return step

    def close(self) -> None:
        """Stop the server (every step it forked has ended by now)."""
        with self._lock:
            proc, self._dead = self.proc, True
        if proc is None:
            return
        procs.stop_group(proc.pid)
        proc.wait()
