"""The front door queues requests when every place in flight is taken (issue 32, item 7):
Azure processes at most 2 x max_concurrent_requests_per_instance x instance_count requests
at once and lets the next ones wait up to `request_settings.max_queue_wait_ms` before its
429. Before, the first request over the limit got 429 at once. Real servers on 127.0.0.1:
the front door (listener + FrontDoor) and a slow model server standing in for azmlinfsrv
(it answers, then closes the connection, as azmlinfsrv does)."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from online_support import ServerThread

from amlocal.endpoints.daemon.frontdoor import FrontDoor, Route, Table


class _Slow(BaseHTTPRequestHandler):
    """Answers every POST after `delay` seconds; HTTP/1.0, so it closes after answering."""

    delay = 0.3

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(self.delay)
        body = b'{"ok": true}'
        with contextlib.suppress(OSError):  # the front door gave up on it (408)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def front_door(
    upstream: ThreadingHTTPServer, *, inflight: int, queued: int, wait_s: float, timeout_s: float
) -> tuple[ServerThread, Route]:
    inst = SimpleNamespace(port=upstream.server_address[1], ready=True)
    route = Route(
        name="blue",
        instances=[inst],
        timeout_s=timeout_s,
        max_inflight=inflight,
        queue_wait_s=wait_s,
        max_queued=queued,
    )
    table = Table(keys=(b"k1", b"k2"), traffic=[(100.0, "blue")], routes={"blue": route})

    async def control(verb: str, query: dict[str, str]) -> tuple[int, object]:
        return 404, {}

    door = FrontDoor(table, "ctl", control)
    return ServerThread(door.handle, door.precheck), route


def post(port: int) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/score", body=b"{}", headers={"Authorization": "Bearer k1"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def burst(port: int, n: int, stagger_s: float = 0.05) -> list[int]:
    """n requests at once; each starts a little after the previous, so arrival order (and
    so who is queued) is known."""

    def one(i: int) -> int:
        time.sleep(i * stagger_s)
        return post(port)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def settled(route: Route) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if route.inflight == 0 and not route.waiting:
            return True
        time.sleep(0.02)
    return False


def test_requests_over_the_limit_wait_for_a_place_instead_of_429(model_server) -> None:
    srv, route = front_door(model_server, inflight=1, queued=4, wait_s=10, timeout_s=20)
    try:
        assert burst(srv.port, 4) == [200, 200, 200, 200]  # before: [200, 429, 429, 429]
        assert settled(route)
    finally:
        srv.stop()


def test_the_queue_is_bounded_beyond_it_429_at_once(model_server) -> None:
    srv, route = front_door(model_server, inflight=1, queued=1, wait_s=10, timeout_s=20)
    try:
        # One in flight, one waiting, the other two refused: memory stays bounded.
        assert burst(srv.port, 4) == [200, 200, 429, 429]
        assert settled(route)
    finally:
        srv.stop()


def test_a_request_waits_at_most_max_queue_wait_then_429(model_server) -> None:
    _Slow.delay = 1.5
    srv, route = front_door(model_server, inflight=1, queued=4, wait_s=0.2, timeout_s=20)
    try:
        assert burst(srv.port, 2) == [200, 429]
        assert settled(route)  # the expired waiter left the queue
    finally:
        _Slow.delay = 0.3
        srv.stop()


def test_the_request_timeout_covers_the_queue_wait(model_server) -> None:
    _Slow.delay = 1.5
    srv, route = front_door(model_server, inflight=1, queued=4, wait_s=10, timeout_s=0.4)
    try:
        assert burst(srv.port, 2) == [408, 408]  # the second timed out while queued
        assert settled(route)
        _Slow.delay = 0.01
        assert post(srv.port) == 200  # the place freed by the timeouts is usable again
    finally:
        _Slow.delay = 0.3
        srv.stop()


def test_max_queue_wait_ms_defaults_to_azures_500_and_refuses_negatives() -> None:
    from amlocal.endpoints.verbs.online_deployment import _queue_wait_ms
    from amlocal.errors import InvalidInput

    assert _queue_wait_ms(None, "d.yml") == 500
    assert _queue_wait_ms(SimpleNamespace(max_queue_wait_ms=None), "d.yml") == 500
    assert _queue_wait_ms(SimpleNamespace(max_queue_wait_ms=0), "d.yml") == 0
    assert _queue_wait_ms(SimpleNamespace(max_queue_wait_ms=3000), "d.yml") == 3000
    with pytest.raises(InvalidInput, match="d.yml: request_settings.max_queue_wait_ms"):
        _queue_wait_ms(SimpleNamespace(max_queue_wait_ms=-1), "d.yml")


def test_the_front_door_forwards_over_the_instances_unix_socket(tmp_path) -> None:
    """An instance with a Unix socket (loopback.SOCKET_ENV) is reached through it; one whose
    socket is missing is reached over TCP from then on."""

    class _UnixServer(ThreadingHTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self) -> None:  # http.server wants a (host, port) name
            socket.socket.bind(self.socket, self.server_address)
            self.server_name, self.server_port = "unix", 0

    path = str(tmp_path / "i.sock")
    unix = _UnixServer(path, _Slow)
    unix.daemon_threads = True
    threading.Thread(target=unix.serve_forever, daemon=True).start()
    _Slow.delay = 0.0
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))  # bound, not listening: TCP would be refused
    inst = SimpleNamespace(port=closed_port.getsockname()[1], ready=True, socket=path)
    route = Route(name="blue", instances=[inst], timeout_s=10, max_inflight=2, max_queued=2)
    table = Table(keys=(b"k1",), traffic=[(100.0, "blue")], routes={"blue": route})

    async def control(verb: str, query: dict[str, str]) -> tuple[int, object]:
        return 404, {}

    door = FrontDoor(table, "ctl", control)
    srv = ServerThread(door.handle, door.precheck)
    tcp = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    tcp.daemon_threads = True
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    try:
        assert post(srv.port) == 200  # only the Unix socket listens
        unix.shutdown()
        unix.server_close()
        os.unlink(path)
        inst.port = tcp.server_address[1]
        assert post(srv.port) == 200  # the socket is gone: TCP
        assert inst.socket == ""
    finally:
        _Slow.delay = 0.3
        srv.stop()
        tcp.shutdown()
        tcp.server_close()
        closed_port.close()
