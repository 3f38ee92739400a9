"""Worker processes: each runs `amlocal.jobs.kinds.parallel.worker` in a process group of its
own, talking JSON lines over its stdin/stdout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import amlocal
from amlocal import procs
from amlocal.jobs.kinds.parallel.minibatch import MiniBatch
from amlocal.jobs.kinds.parallel.settings import ParallelSpec


class Worker:
    """One worker subprocess in its own process group, and the tasks it was given: the one
    it is running first, then at most one waiting in its stdin pipe."""

    def __init__(self, wid: int, spec: ParallelSpec, env: dict[str, str], log_dir: Path) -> None:
        self.wid = wid
        self.log = log_dir / "user" / "stdout" / f"worker-{wid:03d}.txt"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as stderr:  # until the worker redirects its own output
            self.proc = subprocess.Popen(
                [spec.python, "-m", "amlocal.jobs.kinds.parallel.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=spec.code_dir,
                env=env,
                start_new_session=True,
            )
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self.buf = b""
        self.ready = False
        self.tasks: deque[tuple[MiniBatch, int]] = deque()
        self.deadline = math.inf  # of the running task
        config = {
            "worker_id": wid,
            "code_dir": str(spec.code_dir),
            "entry_script": spec.entry_script,
            "program_arguments": spec.program_arguments,
            "logging_level": spec.logging_level,
            "worker_log": str(self.log),
            "append_row": spec.output_action == "append_row",
        }
        self.send({"config": config})

    def send(self, msg: dict[str, Any]) -> bool:
        try:
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            return True
        except (BrokenPipeError, OSError):
            return False

    def read_messages(self) -> tuple[list[dict[str, Any]], bool]:
        """Complete messages available now, and whether the worker's stdout hit EOF."""
        eof = False
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                eof = True
                break
            self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(ln) for ln in lines if ln.strip()], eof

    def kill(self) -> None:
        """SIGKILL the worker's process group (a hung run() may have children) and reap."""
        procs.stop_group(self.proc.pid)
        self.close()

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            procs.stop_group(self.proc.pid)
            self.proc.wait()


def worker_env(spec: ParallelSpec, output_dir: Path) -> dict[str, str]:
    """The environment of every worker: the caller's, the spec's, and what Azure ML sets."""
    env = {**os.environ, **spec.environment_variables}
    env["PYTHONUNBUFFERED"] = "1"
    # Parallelism comes from worker processes; BLAS/OpenMP pools sized for the whole machine
    # in every worker would oversubscribe the cores. A value set by the user wins.
    threads = str(max(1, (os.cpu_count() or 1) // spec.workers))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    env.setdefault("AZUREML_BI_OUTPUT_PATH", str(output_dir))
    if Path(spec.python).parent != Path(sys.executable).parent:
        # Another interpreter (an isolated environment's venv, often made from this very
        # Python, so compared unresolved) still needs to find the worker module: the folder
        # that holds the `amlocal` package goes on its path, wherever this module lives.
        root = str(Path(amlocal.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
