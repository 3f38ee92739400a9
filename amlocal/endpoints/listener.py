"""The front door's HTTP/1.1 server: httptools parsing on a bare asyncio Protocol.

Why not uvicorn: the front door sits on the hot path of every scoring request, and on a
small machine its CPU is taken from the azmlinfsrv workers behind it. uvicorn's ASGI layer
(scope dicts, receive/send messages, middleware) cost about twice the CPU per request of
this Protocol, which measured as ~2 ms added p50 at 16 connections (bench/serving.py).
What is kept from a full server: keep-alive with an idle timeout, `Connection: close`,
HTTP/1.0, chunked request bodies, `Expect: 100-continue`, pipelined requests answered in
order, 400 on a malformed request, and a graceful stop that lets requests in flight finish.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import httptools

KEEP_ALIVE_S = 30.0


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[bytes, bytes]  # lower-case names; a repeated header keeps its last value
    body: bytes


Headers = list[tuple[bytes, bytes]]
Response = tuple[int, Headers, bytes]
Handler = Callable[[Request], Awaitable[Response]]

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def encode_response(
    status: int, headers: Headers, body: bytes, keep_alive: bool, head_only: bool = False
) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")), b"date: " + _date()]
    head += [k + b": " + v for k, v in headers]
    head.append(b"content-length: %d" % len(body))
    if not keep_alive:
        head.append(b"connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + (b"" if head_only else body)


class Connection(asyncio.Protocol):
    """One client connection. Requests are handled one at a time, in arrival order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.queue: collections.deque[tuple[Request, bool]] = collections.deque()
        self.busy = False
        self.idle: asyncio.TimerHandle | None = None

    # -- transport events ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self.queue.clear()
        if self.idle is not None:
            self.idle.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"Protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, b"Invalid HTTP request: " + str(exc).encode())

    # -- parser callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        expect = self.headers.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        request = Request(
            method=self.parser.get_method().decode("ascii"),
            path=(url.path or b"/").decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self.headers,
            body=b"".join(self.body),
        )
        self.queue.append((request, self.parser.should_keep_alive()))
        if not self.busy:
            self._next()

    # -- handling --------------------------------------------------------------------
    def _next(self) -> None:
        if not self.queue or self.transport is None:
            self.busy = False
            self._arm_idle()
            return
        self.busy = True
        request, keep_alive = self.queue.popleft()
        task = asyncio.get_running_loop().create_task(self._handle(request, keep_alive))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _handle(self, request: Request, keep_alive: bool) -> None:
        try:
            status, headers, body = await self.server.handler(request)
        except Exception as exc:  # a handler bug must not take the connection down silently
            status, headers = 500, [(b"content-type", b"text/plain")]
            body = f"front door error: {type(exc).__name__}: {exc}".encode()
        keep_alive = keep_alive and not self.server.stopping
        if self.transport is None:
            return
        head_only = request.method == "HEAD"
        self.transport.write(encode_response(status, headers, body, keep_alive, head_only))
        if not keep_alive:
            self.transport.close()
            self.transport = None
            return
        self._next()

    def _fail(self, status: int, message: bytes) -> None:
        if self.transport is not None:
            self.transport.write(
                encode_response(status, [(b"content-type", b"text/plain")], message, False)
            )
            self.transport.close()
            self.transport = None

    def _arm_idle(self) -> None:
        if self.transport is not None and self.idle is None:
            self.idle = asyncio.get_running_loop().call_later(KEEP_ALIVE_S, self._expire)

    def _expire(self) -> None:
        self.idle = None
        if self.transport is not None and not self.busy:
            self.transport.close()


class Server:
    """Serves `handler` on an already bound, listening socket until `stop()`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()

    async def serve(self, sock: object, grace_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(self), sock=sock, backlog=2048)
        try:
            await self._stop.wait()
        finally:
            server.close()
            # Requests in flight finish (their responses close the connection); idle
            # keep-alive connections are closed now.
            for conn in list(self.connections):
                if not conn.busy and conn.transport is not None:
                    conn.transport.close()
            if self.tasks:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace_s):
                        await asyncio.gather(*self.tasks, return_exceptions=True)
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.close()
