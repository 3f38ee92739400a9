"""Is an endpoint's daemon running? Asked by its file and, when the file is lost or stale,
by its port: the process that answers the endpoint's control token on the port is the
daemon, whatever daemon.json says. Starting a second daemon while the first still serves
would fail to bind and, before, stopped the live instances on its way (issue 20, item 7).

Kept free of asyncio and the front door's imports: `invoke` and `show` call it first.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from amlocal import procs, state
from amlocal.endpoints import keys as keyfile
from amlocal.endpoints import paths

DAEMON_MODULE = "amlocal.endpoints.daemon.main"


def daemon_pid(home: Path, endpoint: str, port: int) -> int | None:
    """The running daemon's pid for this endpoint and port, or None."""
    try:
        info = json.loads(paths.daemon_file(home, endpoint).read_text())
        if info.get("port") == port and procs.runs(int(info["pid"]), DAEMON_MODULE):
            return int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    pid = _pid_on_port(home, endpoint, port)
    if pid is not None:  # the file was lost or damaged: put it back
        state.write_json(
            paths.daemon_file(home, endpoint), {"pid": pid, "port": port, "started": time.time()}
        )
    return pid


def _pid_on_port(home: Path, endpoint: str, port: int) -> int | None:
    try:
        token = keyfile.read(paths.keys_file(home, endpoint))["control"]
    except (OSError, ValueError, KeyError):
        return None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/.amlocal/control/pid", headers={"x-amlocal-control": token})
        resp = conn.getresponse()
        body = resp.read(4096)
        if resp.status != 200:
            return None
        info = json.loads(body)
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if info.get("endpoint") != endpoint or not procs.runs(pid, DAEMON_MODULE):
        return None
    return pid
