"""The caller's side: hand a command to the resident server, or say it cannot (None), and
then run it in-process as before. Imports only the standard library's light modules: this
runs before every command."""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from amlocal import resident

# Signals a terminal sends to the whole foreground group go to the child's group; the rest,
# as `kill PID` would, to the child alone.
GROUP_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
FORWARDED = (*GROUP_SIGNALS, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def _connect() -> tuple[socket.socket | None, Path, str] | None:
    """A connection to this build's server; (None, folder, key) when none runs; None when
    the command must not use one."""
    if not resident.enabled() or sys._xoptions or not hasattr(os, "fork"):
        return None
    try:
        d, k = resident.folder(), resident.key()
    except (OSError, ImportError):
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(d / f"{k}.sock"))
    except OSError:
        s.close()
        return None, d, k
    return s, d, k


def _send(s: socket.socket, request: dict[str, Any], fds: tuple[int, int, int]) -> bool:
    body = json.dumps(request).encode()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    data = struct.pack(">I", len(body)) + body
    try:
        sent = s.sendmsg([data], rights)
        if sent < len(data):
            s.sendall(data[sent:])
    except OSError:
        return False
    return True


def _request(entry: str, argv: list[str], detached: bool) -> dict[str, Any]:
    umask = os.umask(0o022)
    os.umask(umask)
    return {
        "entry": entry,
        "argv0": sys.argv[0] if sys.argv else "amlocal",
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": umask,
        "path": sys.path,
        "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
        "detached": detached,
        "unbuffered": bool(getattr(sys.stdout, "write_through", False)),  # python -u
    }


def _std_open() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def run(entry: str, argv: list[str]) -> int | None:
    """Run `entry` (see server.ENTRIES) with `argv` in a fork of the server; its exit status,
    or None when it has to run in this process (a server is then started for the next)."""
    got = _connect()
    if got is None or not _std_open():
        return None
    s, d, k = got
    if s is None:
        start(d, k)
        return None
    with s:
        try:
            if not _send(s, _request(entry, argv, detached=False), (0, 1, 2)):
                return None
        except OSError:  # the working folder is gone: let the command say so itself
            return None
        replies = s.makefile("rb")
        first = _reply(replies)
        if not first or "pid" not in first:
            return None  # declined, or the server was exiting: nothing ran
        pid = int(first["pid"])
        _forward_signals(pid)
        last = _reply(replies)
    if last is None or "exit" not in last:
        return _orphaned(pid)
    code = int(last["exit"])
    if code < 0:  # the child died of a signal: so does its caller, as a shell would see it
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def spawn(entry: str, argv: list[str], env: dict[str, str], out_fd: int) -> int | None:
    """Start `entry` detached (its own session, stdin /dev/null, stdout and stderr `out_fd`) in
    a fork of the server; its pid, or None to start it as a process of its own."""
    got = _connect()
    if got is None or got[0] is None:
        return None
    s = got[0]
    request = {**_request(entry, argv, detached=True), "env": env}
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        with s:
            if not _send(s, request, (devnull, out_fd, out_fd)):
                return None
            first = _reply(s.makefile("rb"))
    except OSError:
        return None
    finally:
        os.close(devnull)
    return int(first["pid"]) if first and "pid" in first else None


def _reply(stream: Any) -> dict[str, Any] | None:
    line = stream.readline(65536)
    if not line:
        return None
    msg = json.loads(line)
    return msg if isinstance(msg, dict) else None


def _forward_signals(pid: int) -> None:
    def forward(sig: int, _frame: object) -> None:
        try:
            if sig in GROUP_SIGNALS:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    for sig in FORWARDED:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, forward)


def _orphaned(pid: int) -> int:
    """The server stopped while its child ran the command: wait for the child, whose exit
    status went with the server."""
    from amlocal import procs

    while procs.alive(pid):
        time.sleep(0.05)
    sys.stderr.write(
        "ERROR: amlocal's resident server stopped while this command ran; its exit status is "
        "unknown (AMLOCAL_RESIDENT=0 runs commands without it).\n"
    )
    return 1


def start(d: Path, k: str) -> None:
    """Start this build's server in the background, unless one is starting already. Returns in
    about the time a bare interpreter starts: the server forks away before importing."""
    import fcntl
    import subprocess

    lock = os.open(d / f"{k}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # a server holds it: starting, or about to serve
    finally:
        os.close(lock)  # closing releases it: the server takes it for its lifetime
    boot = (
        "import json, os, sys; sys.path[:0] = json.loads(os.environ.pop('AMLOCAL_RESIDENT_PATH'));"
        " from amlocal.resident.server import main; main()"
    )
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    with open(d / f"{k}.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, *flags, "-c", boot, str(d), k, resident.MARKER],
            cwd=d,
            env={**_server_env(), "AMLOCAL_RESIDENT_PATH": json.dumps(sys.path)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ).wait()


# Variables that name one workspace. The server serves every project of its build, and each
# command brings its own environment; started with the first caller's, the server carried
# that project's AMLOCAL_HOME for its whole life, and so looked like one of its processes
# (in /proc/PID/environ) long after its commands were done.
WORKSPACE_ENV = ("AMLOCAL_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in WORKSPACE_ENV}
