"""The server's side: import what commands need once, then fork a child per command.

One thread only (a fork copies just the forking thread, so a lock held by another would stay
held in the child for ever); a self-pipe wakes `select` on SIGCHLD and SIGTERM. The child
returns out of `Server.serve` to `main` and ends in `finish` as a command run in its own
process ends (threads joined, atexit handlers run, streams flushed, the same exit status),
without tearing the server's modules down.
"""

from __future__ import annotations

import array
import fcntl
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from amlocal import resident

# What commands import on their way; the rest each command imports itself.
PRELOAD = (
    "amlocal.cli",
    "amlocal.commands.job",
    "amlocal.commands.assets",
    "amlocal.commands.workspaces",
    "amlocal.commands.registry",
    "amlocal.commands.online",
    "amlocal.commands.batch",
    "amlocal.commands.compute",
    "amlocal.commands.schedule",
    "amlocal.loader",
    "amlocal.tracking",
    "amlocal.jobs.runner",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "azure.ai.ml",
)
# entry -> (module, function taking argv and returning an exit status)
ENTRIES = {"cli": ("amlocal.cli", "run_here"), "runner": ("amlocal.jobs.runner", "main")}
MAX_REQUEST = 8 << 20  # bytes: an environment and argv, with room to spare
RECEIVE_S = 5.0
CHECK_S = 30.0  # how often an idle server checks that its build and socket are still current


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}\n")
    sys.stderr.flush()


# What importing (and amlocal's own set-up) put in the environment, which a child's caller's
# environment would otherwise wipe: set again in each child, unless the caller set it.
ENV_DEFAULTS: dict[str, str] = {}


def preload() -> None:
    before = dict(os.environ)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as amlocal.cli.main sets it
    from amlocal import loader

    # azure-ai-ml builds its pipeline schema with control flow only if this flag is set when
    # the schema is imported, which the loader does before its first load; here, before all.
    loader.enable_control_flow()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the command that needs it fails (or not) on its own import
            log(f"preload {name}: {type(exc).__name__}: {exc}")
    try:  # MLflow's ORM mappers are configured on first use: 0.25 s a command otherwise
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
    except Exception as exc:
        log(f"configure_mappers: {exc}")
    ENV_DEFAULTS.update({k: v for k, v in os.environ.items() if before.get(k) != v})


def shadowed(path: list[str], cwd: str) -> str | None:
    """A file or folder on the caller's sys.path that the caller would import instead of a
    module the server holds (`python -m` puts the working folder first); None when there is
    none. The interpreter's and the venv's own folders are not looked at: the server's key
    covers what is installed there."""
    own = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix})
    held = {n for n in list(sys.modules) if "." not in n}
    for entry in path:
        where = os.path.join(cwd, entry) if entry else cwd
        if where.startswith(own):
            continue
        try:
            names = os.listdir(where)
        except OSError:
            continue
        for name in names:
            full = os.path.join(where, name)
            stem = name.partition(".")[0]
            if stem not in held or not (name.endswith((".py", ".so")) or os.path.isdir(full)):
                continue
            mod = sys.modules[stem]
            theirs = os.path.realpath(full)
            if getattr(mod, "__file__", None) is None:  # a namespace package: its folders
                places = [os.path.realpath(x) for x in getattr(mod, "__path__", [])]
            else:
                ours = str(mod.__file__)
                places = [os.path.realpath(os.path.dirname(ours) if name == stem else ours)]
            if theirs not in places:
                return theirs
    return None


class Server:
    def __init__(self, d: Path, k: str, lock: int) -> None:
        self.d, self.k, self.lock = d, k, lock
        self.path = d / f"{k}.sock"
        tmp = d / f"{k}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        self.listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(tmp))
        os.chmod(tmp, 0o600)
        self.listener.listen(128)
        os.replace(tmp, self.path)
        self.inode = os.stat(self.path).st_ino
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for a caller, not us
        self.stopping = False
        self.debug = bool(os.environ.get("AMLOCAL_RESIDENT_DEBUG"))  # a line per command
        self.callers: dict[int, socket.socket] = {}  # pid -> the connection of its caller
        self.last = time.monotonic()
        self.checked = self.last
        from amlocal.state import write_json

        write_json(
            d / f"{k}.pid",
            {"pid": os.getpid(), "key": k, "python": sys.executable,
             "code": os.path.dirname(os.path.dirname(__file__)), "started": time.time()},
        )  # fmt: skip

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _current(self) -> bool:
        """Still this build's server: the socket is ours and amlocal's files did not change."""
        try:
            if os.stat(self.path).st_ino != self.inode:
                return False
        except OSError:
            return False
        return resident.key() == self.k

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        try:
            if os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
                (self.d / f"{self.k}.pid").unlink(missing_ok=True)
        except OSError:
            pass
        self.listener.close()
        self.listener = None

    def serve(self) -> tuple[dict[str, Any], list[int]] | None:
        """Serve until stopped, idle or stale; in a forked child, return its command."""
        while True:
            now = time.monotonic()
            if self.listener is not None and not self.stopping and now - self.checked > CHECK_S:
                self.checked = now
                if not self._current():
                    log("build or socket changed: exiting")
                    self.stopping = True
            idle = not self.callers and now - self.last > resident.idle_s()
            if self.stopping or idle:
                self._close_listener()
                if not self.callers:
                    return None
            watched: list[Any] = [self.wake_r, *self.callers.values()]
            if self.listener is not None:
                watched.append(self.listener)
            ready, _, _ = select.select(watched, [], [], 5.0)
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            self._reap()
            for pid, conn in list(self.callers.items()):
                if conn in ready and not conn.recv(1):  # the caller died: so does its command
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    conn.close()
                    del self.callers[pid]
            if self.listener is not None and self.listener in ready:
                child = self._accept()
                if child is not None:
                    return child

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.debug:
                cpu = usage.ru_utime + usage.ru_stime
                log(f"{pid} exited {os.waitstatus_to_exitcode(status)}, {cpu:.3f} s of CPU")
            conn = self.callers.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
                    conn.sendall(b"\n")
                except OSError:
                    pass
                conn.close()

    def _accept(self) -> tuple[dict[str, Any], list[int]] | None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            request, fds = self._receive(conn)
            why = shadowed(request["path"], request["cwd"])
            if why is not None:
                conn.sendall(json.dumps({"decline": f"{why} shadows a module"}).encode() + b"\n")
                raise ValueError(f"declined: {why} shadows a module")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log(f"request refused: {exc}")
            for fd in fds:
                os.close(fd)
            conn.close()
            return None
        self.last = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._forget(conn)
            return request, fds
        for fd in fds:
            os.close(fd)
        if not request["detached"]:  # a detached child leads a session of its own instead
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # it did so itself already
        try:
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:
            pass
        if request["detached"]:
            conn.close()
        else:
            self.callers[pid] = conn
        return None

    def _receive(self, conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
        """One request: a length, JSON, and the caller's three standard streams. Bounded in
        size and time; only from this user (the folder is private, and the peer checked)."""
        conn.settimeout(RECEIVE_S)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            raise ValueError("a caller of another user")
        fds: list[int] = []
        data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * array.array("i").itemsize))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                ints = array.array("i")
                ints.frombytes(payload[: len(payload) - len(payload) % ints.itemsize])
                fds += list(ints)
        try:
            if len(fds) != 3 or len(data) < 4:
                raise ValueError("expected three file descriptors and a length")
            (size,) = struct.unpack(">I", data[:4])
            if size > MAX_REQUEST:
                raise ValueError(f"a request of {size} bytes")
            body = data[4:]
            while len(body) < size:
                more = conn.recv(min(size - len(body), 1 << 20))
                if not more:
                    raise ValueError("a request cut short")
                body += more
            request = json.loads(body)
            if not isinstance(request, dict) or request.get("entry") not in ENTRIES:
                raise ValueError("not a request")
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        conn.settimeout(None)
        return request, fds

    def _forget(self, keep: socket.socket) -> None:
        """In a child: drop the server's descriptors and handlers (the caller's connection too:
        the server reports the exit status)."""
        signal.set_wakeup_fd(-1)
        for fd in (self.wake_r, self.wake_w, self.lock):
            os.close(fd)
        if self.listener is not None:
            self.listener.close()
        for conn in (*self.callers.values(), keep):
            conn.close()


def _stdio(unbuffered_caller: bool) -> None:
    """New standard streams over the caller's descriptors, buffered as the interpreter would
    buffer them for this caller (a terminal is line-buffered), with the server's encoding."""
    import io

    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED")) or unbuffered_caller

    def text(fd: int, old: Any, write: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w" if write else "r", closefd=False)
        buffered: Any = raw  # python -u: writes go straight to the descriptor
        if not write:
            buffered = io.BufferedReader(raw)
        elif not unbuffered:
            buffered = io.BufferedWriter(raw)
        tty = os.isatty(fd)
        return io.TextIOWrapper(
            buffered,
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors=getattr(old, "errors", None) or "strict",
            line_buffering=write and (fd == 2 or tty) and not unbuffered,
            write_through=write and unbuffered,
        )

    for old in (sys.stdout, sys.stderr):
        try:
            old.flush()
        except (OSError, ValueError):
            pass
    # sys.__stdout__ and the others stay: they write to the same descriptors.
    sys.stdin = text(0, sys.__stdin__, False)
    sys.stdout = text(1, sys.__stdout__, True)
    sys.stderr = text(2, sys.__stderr__, True)


def run(request: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: become the caller's process, then run its command."""
    if request["detached"]:
        os.setsid()
    else:
        os.setpgid(0, 0)
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    sigint = signal.SIG_IGN if request.get("sigint_ignored") else signal.default_int_handler
    signal.signal(signal.SIGINT, sigint)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    time.tzset()
    sys.path[:] = request["path"]
    importlib.invalidate_caches()
    sys.argv = [request["argv0"], *request["argv"]]
    _stdio(bool(request.get("unbuffered")))
    if "numpy.random" in sys.modules:  # `random` reseeds itself after a fork; NumPy does not
        sys.modules["numpy.random"].seed()
    module, function = ENTRIES[request["entry"]]
    return int(getattr(importlib.import_module(module), function)(list(request["argv"])) or 0)


def main() -> None:
    """`python -c ... main() FOLDER KEY`, started by client.start: fork away (the starter
    returns at once), hold the lock, import, serve."""
    d, k = Path(sys.argv[1]), sys.argv[2]
    if os.fork() > 0:
        os._exit(0)
    # In a frame of its own: coverage.py records nothing more of the frame that forked.
    _serve(d, k)


def _serve(d: Path, k: str) -> None:
    """The forked-away server: hold the lock, import, serve; in a child, run its command."""
    lock = os.open(d / f"{k}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os._exit(0)  # another server of this build starts or runs
    if resident.key() != k:
        log("the build changed before the server started: not serving")
        os._exit(0)
    started = time.monotonic()
    preload()
    import threading

    if threading.active_count() != 1:
        log(f"threads after preload ({threading.enumerate()}): forking is unsafe, not serving")
        os._exit(0)
    import gc

    # Out of the collector's reach: a collection in a child would otherwise touch (and so copy)
    # every page of the server's heap, 1.6 s of CPU per command (measured on `model list`).
    gc.collect()
    gc.freeze()
    log(f"serving {k} ({len(sys.modules)} modules, {time.monotonic() - started:.1f} s)")
    child = Server(d, k, lock).serve()
    if child is None:
        log("stopped")
        raise SystemExit(0)
    finish(*child)


def finish(request: dict[str, Any], fds: list[int]) -> NoReturn:
    """Run the child's command and end it as the interpreter ends a process (non-daemon
    threads joined, atexit handlers run, streams flushed, the same exit status and traceback),
    but without tearing down the server's 3,600 modules: that touched, and so copied, most of
    the heap, 0.25 s for `environment show`, whose own process takes 0.09 s (bench/resident.py)."""
    import threading
    import traceback

    code = 0
    interrupted = False
    try:
        code = run(request, fds)
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as the interpreter does when it cannot flush
    if interrupted:  # an uncaught Ctrl-C ends a Python process by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _exit_status(value: object) -> int:
    """SystemExit's value as the interpreter turns it into an exit status."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    sys.stderr.write(f"{value}\n")
    return 1
