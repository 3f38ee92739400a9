"""The front door reads a chunked answer from an instance (issue 32, item 7's question: is a
response cut off on its way from an instance passed on?). azmlinfsrv streams the answer of
a score.py that returns a generator (Flask's streamed response), and gunicorn frames it in
chunks for the front door's HTTP/1.1 request. Before, the front door passed the chunks'
framing on as the body, and a stream the instance cut short (no last chunk) as a 200; now
the client gets the content, or a 502 when the instance did not finish. A real front door
on 127.0.0.1 and a stand-in instance speaking raw HTTP."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from online_support import ServerThread

from amlocal.endpoints.daemon.frontdoor import FrontDoor, Route, Table

WHOLE = b"5\r\nhello\r\n6; ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
CUT = b"5\r\nhello\r\n6\r\n wor"


@pytest.fixture
def instance() -> Iterator[dict[str, bytes | int]]:
    """A model server that answers every request with `answer["body"]`, chunked, then
    closes the connection (as azmlinfsrv does behind the front door). With `answer["head"]`
    set it sends that head instead, and with `answer["hold"]` it keeps the connection open
    after its answer until the front door closes it."""
    sock = socket.create_server(("127.0.0.1", 0))
    answer: dict[str, bytes | int] = {"port": sock.getsockname()[1], "body": WHOLE}

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                body = answer["body"]
                assert isinstance(body, bytes)
                head = answer.get(
                    "head",
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                    b"transfer-encoding: chunked\r\n\r\n",
                )
                assert isinstance(head, bytes)
                conn.sendall(head + body)
                if answer.get("hold"):
                    conn.settimeout(30)
                    with contextlib.suppress(OSError):
                        while conn.recv(65536):
                            pass

    threading.Thread(target=serve, daemon=True).start()
    yield answer
    sock.close()


@pytest.fixture
def door(instance: dict[str, bytes | int]) -> Iterator[int]:
    inst = SimpleNamespace(port=instance["port"], ready=True)
    route = Route("blue", [inst], timeout_s=5, max_inflight=4, max_queued=4)
    table = Table(keys=(b"k1",), traffic=[(100.0, "blue")], routes={"blue": route})

    async def control(verb: str, query: dict[str, str]) -> tuple[int, object]:
        return 404, {}

    front = FrontDoor(table, "ctl", control)
    srv = ServerThread(front.handle, front.precheck)
    yield srv.port
    srv.stop()


def score(port: int) -> tuple[int, bytes, str | None]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/score", body=b"{}", headers={"Authorization": "Bearer k1"})
        r = c.getresponse()
        return r.status, r.read(), r.getheader("transfer-encoding")
    finally:
        c.close()


def test_a_chunked_answer_reaches_the_client_as_its_content(door: int) -> None:
    # before: b"5\r\nhello\r\n6; ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
    assert score(door) == (200, b"hello world", None)


def test_a_chunked_answer_cut_short_is_a_502_not_a_200(
    door: int, instance: dict[str, bytes | int]
) -> None:
    instance["body"] = CUT
    status, body, _ = score(door)
    assert status == 502, body  # before: 200 with the cut framing as its body
    assert b"cut" in body


def test_an_answer_whole_by_its_length_is_passed_on_before_the_instance_closes(
    door: int, instance: dict[str, bytes | int]
) -> None:
    """The front door answers once the Content-Length's last byte is in: it does not wait for
    the instance to close (one read and a wake-up less per request; and a server that keeps
    the connection open despite `connection: close` is served, not timed out)."""
    instance["head"] = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 6\r\n\r\n"
    )
    instance["body"] = b"[1.25]"
    instance["hold"] = 1
    # before: 408, the request timeout, as the front door waited for a close that never came
    assert score(door) == (200, b"[1.25]", None)


def test_an_answer_shorter_than_its_length_is_a_502(
    door: int, instance: dict[str, bytes | int]
) -> None:
    instance["head"] = b"HTTP/1.1 200 OK\r\ncontent-length: 60\r\n\r\n"
    instance["body"] = b"[1.25]"
    status, body, _ = score(door)
    assert status == 502, body
    assert b"cut at 6 of 60" in body
