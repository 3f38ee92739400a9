"""The studio's HTTP edges without a browser: loopback only, names from URLs never reach the
file system, a busy --port fails at once."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def _get(port: int, path: str, host: str = "127.0.0.1", method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_loopback_only_and_hostile_paths(tmp_path: Path, studio_for: Any) -> None:
    env = {**os.environ, "AMLOCAL_HOME": str(tmp_path / "ws")}
    env.pop("MLFLOW_TRACKING_URI", None)
    studio = studio_for(env, tmp_path)
    port = int(studio.url.rsplit(":", 1)[1])
    assert studio.url.startswith("http://127.0.0.1:")
    assert _get(port, "/jobs")[0] == 200
    # A DNS name rebound to 127.0.0.1 by another site is refused.
    assert _get(port, "/jobs", host=f"evil.example:{port}")[0] == 421
    for path in (
        "/jobs/..%2F..%2Fetc%2Fpasswd",
        "/jobs/a%00b",
        "/api/jobs/..%2Fx/detail",
        "/endpoints/..",
        "/models/..%2Fmlflow.db",
        "/schedules/%2Fetc",
        "/monitors/x/plots/y/..%2F..%2Fstore.db",
        "/static/..%2F..%2F..%2Fstore.py",
    ):
        status, body = _get(port, path)
        assert status == 404, (path, status)
        assert "root:" not in body
    assert _get(port, "/api/endpoints/nope-ep/test", method="POST")[0] == 404


def test_a_busy_port_fails_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "AMLOCAL_HOME": str(tmp_path / "ws")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "amlocal.cli", "studio", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2 and f"127.0.0.1:{port} is in use" in r.stderr


def test_links_point_at_the_running_studio(tmp_path: Path, studio_for: Any) -> None:
    """`Web View:` names the running studio's port; a second studio on the same workspace
    leaves the links on the first, and its exit does not unrecord the first."""
    env = {**os.environ, "AMLOCAL_HOME": str(tmp_path / "ws")}
    env.pop("MLFLOW_TRACKING_URI", None)
    first = studio_for(env, tmp_path)
    second = studio_for(env, tmp_path)
    from amlocal import studio

    assert studio.url(tmp_path / "ws", "jobs", "x") == f"{first.url}/jobs/x"
    second.stop()
    assert studio.url(tmp_path / "ws", "jobs", "x") == f"{first.url}/jobs/x"
    first.stop()
    assert studio.url(tmp_path / "ws", "jobs", "x").endswith(f":{studio.preferred_port()}/jobs/x")
