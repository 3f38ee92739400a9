"""The resident CLI: `amlocal` commands and job runners start as forks of one warm interpreter.

Why: nearly every verb imports MLflow with its SQL store and azure-ai-ml before doing any work.
`amlocal model list` took 3.5 s on an idle core, 2.5 s of it imports (python -X importtime,
2026-12-07), every `job create` paid it twice (the CLI, then its runner), and the test suite
runs thousands of commands. So, as Python's multiprocessing forkserver and Gradle's daemon do,
one server per amlocal build imports them once and forks a child per command
(`amlocal.resident.server`). The child takes the caller's argv, environment, working
directory, umask, SIGINT disposition and standard streams (passed as file descriptors over a
Unix socket), runs the command, and its exit status becomes the caller's; the caller forwards
signals to it and its death kills it (`amlocal.resident.client`).

A command runs in its own process as before when AMLOCAL_RESIDENT=0, when no server runs yet
(the command starts one in the background for the next), when the interpreter has -X options,
or when the caller's sys.path would import another copy of a module the server holds. The
server's key covers the interpreter and its flags, the environment variables read at import
time, and amlocal's files and the venv's site-packages (paths, sizes, mtimes): an edit or an
install gets a fresh server, and the stale one exits. It exits after IDLE_S without commands;
`amlocal workspace status` lists it and `workspace stop` stops it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

IDLE_S = 900.0
# Read at import time by the modules the server holds (locale, logging, thread pools): a
# server serves only callers that agree with it on these.
IMPORT_TIME_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "MLFLOW_CONFIGURE_LOGGING", "MLFLOW_LOGGING_LEVEL",
                   "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TZ")  # fmt: skip
MARKER = "amlocal.resident"  # on the server's command line: `procs.runs(pid, MARKER)`


def idle_s() -> float:
    """How long a server waits for a command before it exits (AMLOCAL_RESIDENT_IDLE_S)."""
    try:
        return float(os.environ.get("AMLOCAL_RESIDENT_IDLE_S") or IDLE_S)
    except ValueError:
        return IDLE_S


def enabled() -> bool:
    return os.environ.get("AMLOCAL_RESIDENT", "1").lower() not in ("0", "false", "no", "off")


def folder() -> Path:
    """The user's private folder of servers (sockets, pids, logs): AMLOCAL_RESIDENT_DIR, else
    /tmp/amlocal-resident-UID (short: a socket's path is limited to 107 bytes). Refused unless
    it is a real folder of this user that no one else can enter, since a socket there is
    handed our environment and our streams."""
    d = Path(os.environ.get("AMLOCAL_RESIDENT_DIR") or f"/tmp/amlocal-resident-{os.getuid()}")
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{d} is not a private folder of this user")
    return d


def _code_root() -> str:
    import amlocal

    return os.path.dirname(os.path.abspath(amlocal.__file__))


def fingerprint() -> str:
    """What the server's modules were built from: amlocal's files and the folders of installed
    packages (an install adds or renames entries, which changes a folder's mtime)."""
    h = hashlib.sha256()
    root = _code_root()
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(top, name))
                h.update(f"{top}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for entry in sorted(set(sys.path)):  # the server's is the caller's with its own appended
        if entry and entry.startswith(sys.prefix) and os.path.isdir(entry):
            h.update(f"{entry}:{os.stat(entry).st_mtime_ns}\n".encode())
    return h.hexdigest()


def key() -> str:
    """The server a caller may use: same interpreter, flags, import-time environment, build."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PYTHON") or k in IMPORT_TIME_ENV}
    env.pop("PYTHONPATH", None)  # sys.path itself is checked, per command (server.shadowed)
    parts = [sys.executable, repr(sys.flags), json.dumps(env, sort_keys=True), _code_root()]
    parts.append(fingerprint())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def running() -> list[dict[str, object]]:
    """This user's servers that run (from their pid files): pid, key, memory in MB."""
    from amlocal import procs

    try:
        d = folder()
    except OSError:
        return []
    found = []
    for pidfile in sorted(d.glob("*.pid")):
        try:
            info = json.loads(pidfile.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if procs.runs(pid, MARKER):
            found.append({"pid": pid, "key": info.get("key"), "code": info.get("code")})
    return found


def stop() -> list[int]:
    """Stop this user's servers: each stops taking commands at once and exits when the
    commands it runs have ended (SIGTERM). Returns their pids."""
    import signal

    pids = [int(str(s["pid"])) for s in running()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return pids
