"""An online endpoint's daemon as the CLI drives it: start it, stop it, send it a verb.

The daemon (`daemon/main.py`) serves the endpoint and its deployments' instances; every CLI verb
that changes what it serves asks it to reload over its control route, with the endpoint's
control token. A daemon that died (reboot, kill) is started again by the next verb.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from typing import Any

from amlocal import daemons, procs
from amlocal.endpoints import keys as keyfile
from amlocal.endpoints import paths
from amlocal.endpoints.verbs import liveness
from amlocal.endpoints.verbs.online_records import EP, get_endpoint
from amlocal.errors import AmlocalError
from amlocal.workspace import Workspace


def daemon_pid(ws: Workspace, name: str, port: int) -> int | None:
    """The running daemon's pid, if there is one for this endpoint and port (found by its
    file, or by its port when the file is lost)."""
    return liveness.daemon_pid(ws.home, name, port)


def control(ws: Workspace, name: str, verb: str, timeout: float = 600.0) -> dict[str, Any]:
    rec = get_endpoint(ws, name)
    token = keyfile.read(paths.keys_file(ws.home, name))["control"]
    conn = http.client.HTTPConnection("127.0.0.1", rec["_port"], timeout=timeout)
    try:
        conn.request("POST", f"/.amlocal/control/{verb}", headers={"x-amlocal-control": token})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise AmlocalError(f"endpoint '{name}' daemon: {resp.status} {body[:500]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def ensure_daemon(ws: Workspace, name: str, _retry: bool = True) -> dict[str, Any]:
    """Start the endpoint's daemon if it is not running (after a reboot, a kill, ...) and
    wait until its deployments are up; returns the daemon's status."""
    rec = get_endpoint(ws, name)
    port = rec["_port"]
    if daemon_pid(ws, name, port) is None:
        log = paths.daemon_log(ws.home, name)
        paths.daemon_file(ws.home, name).unlink(missing_ok=True)
        daemons.start(liveness.DAEMON_MODULE, [str(ws.home), name, str(port)], ws.home, log)
        deadline = time.monotonic() + 30
        while daemon_pid(ws, name, port) is None:
            if time.monotonic() > deadline:
                from amlocal.endpoints.daemon.instances import tail

                raise AmlocalError(f"endpoint '{name}' did not start:\n{tail(log)}")
            time.sleep(0.02)
    for _ in range(200):
        try:
            return control(ws, name, "status")
        except (ConnectionRefusedError, ConnectionResetError):
            if daemon_pid(ws, name, port) is None and _retry:  # it was stopping: start anew
                return ensure_daemon(ws, name, _retry=False)
            time.sleep(0.02)
    try:
        return control(ws, name, "status")
    except (ConnectionRefusedError, ConnectionResetError):
        raise AmlocalError(
            f"endpoint '{name}' is not answering on port {port} (its front door may be "
            f"stopping); run the command again"
        ) from None


def stop_daemon(ws: Workspace, name: str) -> None:
    """Stop the daemon and everything it started; kill leftovers if it does not answer."""
    rec = ws.store.get(EP, name)
    if rec is None:
        return
    pid = daemon_pid(ws, name, rec["_port"])
    if pid is None:
        from amlocal.endpoints.daemon.main import reap_stale

        reap_stale(paths.endpoint_dir(ws.home, name))
        return
    try:
        control(ws, name, "shutdown", timeout=10)
    except (OSError, AmlocalError):
        pass
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and procs.alive(pid):
        time.sleep(0.02)
    if daemon_pid(ws, name, rec["_port"]) is not None:
        try:
            procs.stop_group(os.getpgid(pid))
        except ProcessLookupError:
            pass
    from amlocal.endpoints.daemon.main import reap_stale

    reap_stale(paths.endpoint_dir(ws.home, name))
