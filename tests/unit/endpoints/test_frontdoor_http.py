"""The front door's HTTP/1.1 server (amlocal/endpoints/daemon/listener.py) on a real 127.0.0.1
socket, spoken to with raw bytes: what curl, requests and Azure's SDK clients rely on."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from online_support import ServerThread

from amlocal.endpoints.daemon import frontdoor
from amlocal.endpoints.daemon.listener import Request, Response


async def echo(req: Request) -> Response:
    """Echo what the server parsed; `/slow?ms=N` answers after N ms (pipelining order)."""
    if req.path == "/slow":
        await asyncio.sleep(int(req.query.split("=")[1]) / 1000)
    if req.path == "/boom":
        raise RuntimeError("handler bug")
    body = f"{req.method} {req.path} {req.query} {len(req.body)} ".encode() + req.body
    return 200, [(b"content-type", b"text/plain"), (b"x-seen-host", req.headers[b"host"])], body


@pytest.fixture
def srv() -> Iterator[ServerThread]:
    r = ServerThread(echo)
    yield r
    r.stop()


def raw(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send `data`, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_keep_alive_serves_many_requests_on_one_connection(srv: ServerThread) -> None:
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    for i in range(3):
        c.request("POST", f"/score?i={i}", body=b"x" * i, headers={"Host": "h"})
        r = c.getresponse()
        assert r.status == 200
        assert r.read() == f"POST /score i={i} {i} ".encode() + b"x" * i
        assert r.getheader("x-seen-host") == "h"
        assert r.getheader("date")
        assert r.getheader("connection") is None
    c.close()


def test_pipelined_requests_are_answered_in_order(srv: ServerThread) -> None:
    data = (
        b"GET /slow?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /fast HTTP/1.1\r\nHost: b\r\n\r\n"
        b"GET /last HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n"
    )
    out = raw(srv.port, data)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    assert out.index(b"GET /slow") < out.index(b"GET /fast") < out.index(b"GET /last")
    assert out.rstrip().endswith(b"GET /last  0")
    assert b"connection: close" in out


def test_chunked_body_and_expect_100_continue(srv: ServerThread) -> None:
    data = (
        b"POST /score HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    out = raw(srv.port, data)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    assert out.endswith(b"POST /score  11 hello world")


def test_http10_closes_and_head_has_no_body(srv: ServerThread) -> None:
    out = raw(srv.port, b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in out
    head = raw(srv.port, b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"content-length: 11" in head and head.endswith(b"\r\n\r\n")


def test_malformed_request_is_a_400_and_a_handler_bug_a_500(srv: ServerThread) -> None:
    out = raw(srv.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request") and b"Invalid HTTP request" in out
    out = raw(srv.port, b"GET /boom HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500") and b"RuntimeError: handler bug" in out


def test_stop_lets_the_request_in_flight_finish_then_closes(srv: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /slow?ms=500 HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.1)
        srv.loop.call_soon_threadsafe(srv.server.stop)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_request_ids_are_version_4_guids() -> None:
    ids = {frontdoor._request_id().decode() for _ in range(2000)}
    assert len(ids) == 2000
    for i in list(ids)[:200]:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122


def test_idle_keep_alive_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from amlocal.endpoints.daemon import listener

    monkeypatch.setattr(listener, "KEEP_ALIVE_S", 0.3)
    r = ServerThread(echo)
    try:
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
            t0 = time.monotonic()
            assert s.recv(65536) == b""  # closed by the server, not by our 5 s timeout
            assert time.monotonic() - t0 < 3
    finally:
        r.stop()
