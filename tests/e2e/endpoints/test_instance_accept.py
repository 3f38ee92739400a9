"""An idle instance wakes one worker per connection (issue 33): gunicorn's sync workers
waited in select(), so each connection woke every idle worker, and all but one went back to
sleep with EAGAIN (the thundering herd); the instance launcher has them wait in epoll with
EPOLLEXCLUSIVE. Measured as what the kernel counts: which workers' voluntary context
switches rose with each request, on a real azmlinfsrv with 2 workers and both of the
daemon's listeners (its TCP port and the front door's Unix socket)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from amlocal import procs
from amlocal.endpoints.instance.loopback import SOCKET_ENV
from amlocal.ports import free_port

SCORE = "def init():\n    pass\n\n\ndef run(raw_data):\n    return raw_data\n"
REQUESTS = 40


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[int, str, list[psutil.Process]]]:
    (tmp_path / "score.py").write_text(SCORE)
    port, sock = free_port(), str(tmp_path / "instance.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "amlocal.endpoints.instance.loopback",
         "--entry_script", str(tmp_path / "score.py"), "--port", str(port)],
        env={**os.environ, "WORKER_COUNT": "2", SOCKET_ENV: sock},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while status(port, "GET", "/") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "instance not up"
            time.sleep(0.1)
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 2
        yield port, sock, workers
    finally:
        procs.stop_group(proc.pid, proc, procs.AT_ONCE)


def status(port: int, method: str, path: str) -> int:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request(method, path, body=b'{"a": 1}' if method == "POST" else None)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return 0


def unix_status(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(65536).split(b"\r\n", 1)[0]


def test_each_connection_wakes_one_idle_worker(instance) -> None:
    port, sock, workers = instance
    time.sleep(0.5)  # both workers idle, waiting
    both = 0
    for _ in range(REQUESTS):
        before = [w.num_ctx_switches().voluntary for w in workers]
        assert status(port, "POST", "/score") == 200
        time.sleep(0.02)  # the worker goes back to waiting before the next one comes
        after = [w.num_ctx_switches().voluntary for w in workers]
        both += all(a > b for a, b in zip(after, before, strict=True))
    # Requests that woke both workers: before, 40 of 40 (each woke every idle worker, one of
    # which found nothing to accept). A count of wake-ups, not a time: a busy box adds
    # switches to the worker that serves, not wake-ups to the other.
    assert both <= REQUESTS // 4, f"{both} of {REQUESTS} requests woke both workers"
    assert unix_status(sock) == b"HTTP/1.1 200 OK"  # the front door's listener serves too
