"""The scheduler daemon: fires enabled schedules while nothing else runs.

`python -m amlocal.schedules.daemon <home>` forks once more and exits (like the endpoint
daemons), so the daemon is adopted by init. One daemon per workspace: it holds an exclusive
lock on `<home>/schedules/daemon.lock` for its whole life and writes its pid to
`daemon.json`. Each tick (at most a second apart) it reads the enabled schedules from the
store, claims each due firing in the store and then submits its job. It exits once no
schedule is enabled; `schedule create/enable` (and `list`/`show`) start it again.

Rules (docs/local-vs-azure.md):
- a firing is claimed before it is submitted: a restart never runs it twice (at most once);
- after the machine slept (or the daemon was down), only the latest missed firing runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from amlocal import daemons, procs
from amlocal.workspace import Workspace

MODULE = "amlocal.schedules.daemon"


def state_dir(home: Path) -> Path:
    return home / "schedules"


def log_file(home: Path) -> Path:
    return state_dir(home) / "scheduler.log"


def running_pid(home: Path) -> int | None:
    """The live daemon's pid, if any (checked against its command line, not only the pid)."""
    try:
        pid = int(json.loads((state_dir(home) / "daemon.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if procs.runs(pid, MODULE) else None


def _enabled(ws: Workspace) -> list[dict[str, Any]]:
    from amlocal.schedules.definition import KIND

    return [r for r in ws.store.list(KIND) if r.get("is_enabled")]


def ensure(ws: Workspace) -> int | None:
    """Start the daemon if a schedule is enabled and none runs; returns its pid."""
    pid = running_pid(ws.home)
    if pid is not None or not _enabled(ws):
        return pid
    daemons.start(MODULE, [str(ws.home)], ws.home, log_file(ws.home))  # it forks and exits
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = running_pid(ws.home)
        if pid is not None:
            return pid
        time.sleep(0.02)
    return running_pid(ws.home)


def _log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {msg}", flush=True)


def _write_info(home: Path) -> None:
    tmp = state_dir(home) / "daemon.json.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))
    tmp.replace(state_dir(home) / "daemon.json")


def tick(ws: Workspace) -> float:
    """Fire what is due; return how long to sleep (seconds, <= 1) or -1 to exit."""
    from amlocal.schedules import definition as sd

    enabled = _enabled(ws)
    if not enabled:
        return -1
    now = sd.now()
    wake = 1.0
    for record in enabled:
        try:
            due = sd.due(record, now)
            if due is not None and sd.claim(ws, record["name"], due):
                job = sd.fire(ws, ws.store.get(sd.KIND, record["name"]) or record, due)
                _log(f"schedule {record['name']}: fired {sd.iso(due)} as job {job['name']}")
            nxt = sd.trigger_of(record).next_after(now)
        except Exception as exc:  # one broken schedule must not stop the others
            _log(f"schedule {record['name']}: {type(exc).__name__}: {exc}")
            _record_error(ws, record["name"], f"{type(exc).__name__}: {exc}")
            continue
        if nxt is not None:
            wake = min(wake, max((nxt - now).total_seconds(), 0.01))
    return wake


def _record_error(ws: Workspace, name: str, err: str) -> None:
    from amlocal.schedules.definition import KIND

    def put(r: dict[str, Any]) -> None:
        r["_last_error"] = err

    ws.store.update(KIND, name, put)


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _reap_children() -> None:
    """Runners are detached sessions but still our children: reap the ones that exited."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def serve(home: Path) -> None:
    ws = Workspace(home)
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _write_info(home)
    _log(f"scheduler started (pid {os.getpid()})")
    store = _identity(home / "store.db")
    while not stopping:
        if _identity(home / "store.db") != store:
            # The workspace was deleted or replaced (`make clean`, a test's tmp dir): its
            # schedules went with it, and an open handle would keep firing them unseen.
            _log("scheduler stopped: the workspace store is gone")
            return
        wait = tick(ws)
        _reap_children()
        if wait < 0:
            # Say we are gone first, then look once more: a schedule enabled meanwhile either
            # sees no daemon (and starts one, which waits for our lock) or is seen here.
            (state_dir(home) / "daemon.json").unlink(missing_ok=True)
            if _enabled(ws):
                _write_info(home)
                continue
            break
        time.sleep(wait)
    _log("scheduler stopped: no schedule is enabled" if not stopping else "scheduler stopped")


def main(argv: list[str]) -> None:
    home = Path(argv[0])
    if os.fork() > 0:  # the CLI reaps this parent at once; init adopts the daemon
        os._exit(0)
    state_dir(home).mkdir(parents=True, exist_ok=True)
    lock = open(state_dir(home) / "daemon.lock", "a+")  # noqa: SIM115 (held for our lifetime)
    deadline = time.monotonic() + 10  # a daemon that is exiting releases it shortly
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if running_pid(home) is not None or time.monotonic() > deadline:
                return  # another daemon serves this workspace
            time.sleep(0.05)
    serve(home)


if __name__ == "__main__":
    main(sys.argv[1:])
