"""The front door's HTTP/1.1 server: httptools parsing on a bare asyncio Protocol.

Why not uvicorn: the front door sits on the hot path of every scoring request, and on a
small machine its CPU is taken from the azmlinfsrv workers behind it. uvicorn's ASGI layer
(scope dicts, receive/send messages, middleware) cost about twice the CPU per request of
this Protocol, which measured as ~2 ms added p50 at 16 connections (bench/serving.py).
What is kept from a full server: keep-alive with an idle timeout, `Connection: close`,
HTTP/1.0, chunked request bodies, `Expect: 100-continue`, pipelined requests answered in
order, 400 on a malformed request, and a graceful stop that lets requests in flight finish.

Bounded in memory and time, whoever the client is (issue 20): the `precheck` (the key) runs
when the headers arrive, so a request without a key is answered 401 before a byte of its
body is read; bodies over `Limits.max_body` get 413 (from Content-Length, or as soon as a
chunked body passes it), heads over `max_head` get 431; the head and the body each have a
deadline (408), an idle connection is closed, and a refused request's connection is
half-closed and drained for a moment (lingering close), so the client reads the answer
instead of a reset.

Connections that have not yet shown a key cannot starve those that have (issue 32, item 3:
520 slow-header connections made 25 of 29 keyed requests get 503): until its first request
passes the precheck a connection is "unauthenticated"; past `max_unauthenticated` of them a
new one takes the place of the oldest slow sender (part of a head, then nothing), a new
connection has to send its first head within `head_timeout_s`, and at `max_connections` a
new connection takes the place of the oldest unauthenticated connection first, then of the
keep-alive connection idle the longest; 503 only when every connection is authenticated
and busy.

A connection whose place is taken is told, never cut off (issue 32, item 7: 190 of 135,848
requests of a soak were lost): it gets the same 503 (`retry-after: 1`, `connection: close`)
as a connection refused at the cap, then a lingering close, so a request its client writes
as the place is taken reads that 503 as its answer. A connection that has sent nothing yet
gives way only at `max_connections`: it is as likely a client about to write as a squatter.
And from 7/8 of `max_connections` open, answers say `connection: close`: places come back
where the client knows, so few idle connections have to be taken back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import socket
import sys
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

# The idle time a keep-alive connection is promised (`Keep-Alive: timeout=N`). The server
# closes it only KEEP_ALIVE_GRACE_S later: a client that reuses a connection right at the
# advertised time (its clock starts when it reads the answer, later than ours) must never
# meet a connection closed under its request (issue 32, item 7: 14 requests lost in a
# 3-minute soak when both were 30 s).
KEEP_ALIVE_S = 30.0
KEEP_ALIVE_GRACE_S = 5.0
LINGER_S = 2.0


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


@dataclass(slots=True)
class Limits:
    """What one client may take. Defaults can be changed with AMLOCAL_* variables (the
    daemon's environment) or by passing Limits(...) to Server."""

    # Azure documents no per-request body cap for managed online endpoints (only the
    # 5 MBps bandwidth throttle; docs/local-vs-azure.md); 100 MiB keeps one request from
    # holding the front door's memory and is far above any scoring payload.
    max_body: int = field(
        default_factory=lambda: int(_env_number("AMLOCAL_MAX_REQUEST_BYTES", 100 * 1024 * 1024))
    )
    max_head: int = 64 * 1024  # request line + headers (8 KiB is nginx's default per line)
    head_timeout_s: float = field(
        default_factory=lambda: _env_number("AMLOCAL_HEADER_TIMEOUT_S", 10.0)
    )
    body_timeout_s: float = field(
        default_factory=lambda: _env_number("AMLOCAL_BODY_TIMEOUT_S", 60.0)
    )
    # Azure's documented default: 500 active connections per endpoint (how-to-manage-quotas).
    max_connections: int = field(
        default_factory=lambda: int(_env_number("AMLOCAL_MAX_CONNECTIONS", 500))
    )
    # Connections that have not passed the precheck yet (no valid key seen): at most this
    # many, so keyed clients always keep the other half of max_connections.
    max_unauthenticated: int = field(
        default_factory=lambda: int(_env_number("AMLOCAL_MAX_UNAUTHENTICATED", 250))
    )
    # The advertised keep-alive idle time; the connection is closed min(KEEP_ALIVE_GRACE_S,
    # keep_alive_s) after it (short values are for tests).
    keep_alive_s: float = field(
        default_factory=lambda: _env_number("AMLOCAL_KEEP_ALIVE_S", KEEP_ALIVE_S)
    )

    @property
    def shed_at(self) -> int:
        """Open connections from which answers say `connection: close`: near the cap, places
        are given back where HTTP/1.1 lets the client know (after an answer), so that few
        idle connections have to be taken back later (each of those costs a told 503)."""
        return self.max_connections - max(1, self.max_connections // 8)

    @property
    def idle_close_s(self) -> float:
        return self.keep_alive_s + min(KEEP_ALIVE_GRACE_S, self.keep_alive_s)

    def keep_alive_header(self) -> bytes:
        return b"keep-alive: timeout=%d" % max(1, int(self.keep_alive_s))


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
# Called with (method, path, headers) when the headers are complete: a Response refuses the
# request before its body is read (401 without a valid key), None lets it through.
Precheck = Callable[[str, str, dict[bytes, bytes]], Response | None]

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def encode_response(
    status: int,
    headers: Headers,
    body: bytes,
    keep_alive: bool,
    head_only: bool = False,
    keep_alive_header: bytes = b"keep-alive: timeout=%d" % int(KEEP_ALIVE_S),
) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")), b"date: " + _date()]
    head += [k + b": " + v for k, v in headers]
    head.append(b"content-length: %d" % len(body))
    if not keep_alive:
        head.append(b"connection: close")
    else:  # tells the client how long an idle connection stays open (RFC 9112 keep-alive)
        head.append(keep_alive_header)
    return b"\r\n".join(head) + b"\r\n\r\n" + (b"" if head_only else body)


class Connection(asyncio.Protocol):
    """One client connection. Requests are handled one at a time, in arrival order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        # (request, keep-alive, an answer made before the body was read)
        self.queue: collections.deque[tuple[Request | None, bool, Response | None]] = (
            collections.deque()
        )
        self.busy = False
        self.paused = False  # reading paused while a parsed request waits its turn
        self.reading = False  # between the first byte of a request and its end
        self.refused = False  # a request was refused: the rest of the input is discarded
        self.authenticated = server.precheck is None  # a request of it passed the precheck
        self.timer: asyncio.TimerHandle | None = None
        # The deadline the request being read is under, armed once `data_received` has fed
        # all it got to the parser: a request that arrives whole (the common case) is then
        # never armed at all, which saves two timers and two cancels per request (the head's
        # and the body's; bench/serving.py, front door CPU per request).
        self.pending: tuple[float, bytes] | None = None
        self.parsed_url: httptools.parser.url_parser.URL | None = None  # parsed for the precheck

    # -- transport events ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        server.stats.accepted += 1
        if (
            not self.authenticated
            and len(server.unauthenticated) >= self.limits.max_unauthenticated
        ):
            # Only a slow sender gives way here: a connection that has sent nothing yet may be
            # a client that writes a moment after it connects (issue 32, item 7: the soak's
            # client, opening a burst of connections under load, lost 24 requests in 30 s
            # this way, with the cap of all connections far off). It may still give way at
            # that cap, below, and is then told.
            self._evict_unauthenticated(stalled_only=True)
        if len(server.connections) >= self.limits.max_connections and not (
            self._evict_unauthenticated(stalled_only=False) or self._evict_idle()
        ):
            self.refused = True
            server.stats.refused += 1
            transport.write(_plain(503, b"Too many connections", [(b"retry-after", b"1")]))
            self._linger()
            return
        server.connections.add(self)
        server.stats.peak = max(server.stats.peak, len(server.connections))
        if not self.authenticated:
            server.unauthenticated[self] = None
        else:  # no precheck: a connection is idle until its first request
            server.idle[self] = None
        # The first head must arrive within the head deadline, not the keep-alive time: a
        # connection that never sends holds a place for seconds, not half a minute.
        self._arm(self.limits.head_timeout_s, None)

    def _evict_unauthenticated(self, stalled_only: bool) -> bool:
        """Take back the place of the oldest connection that has shown no key: a place taken
        without a key is the first to be given back. A slow sender (part of a head, then
        nothing) goes first; with `stalled_only` no other. One with input not yet read is
        skipped: it is a client that has sent its request (the loop has not read it yet),
        not one that stalls; without this, a flood reopening its connections as they close
        evicted them in turn."""
        fallback: Connection | None = None
        for conn in self.server.unauthenticated:
            if conn.transport is None:
                continue
            stalled = conn.reading or conn.refused
            if not stalled and (stalled_only or fallback is not None):
                continue  # not a candidate: spare the system call below
            if _unread(conn.transport) > 0:
                continue
            if stalled:
                conn._evict()
                self.server.stats.evicted_unauthenticated += 1
                return True
            fallback = conn
        if stalled_only or fallback is None:
            return False
        fallback._evict()
        self.server.stats.evicted_unauthenticated += 1
        return True

    def _evict_idle(self) -> bool:
        """At the cap, take back the place of the keep-alive connection idle the longest:
        idle connections cost the client nothing to hold, so they must not be able to lock
        others out; the longest idle is the one a client's pool is least likely to reuse."""
        for conn in self.server.idle:
            if conn.transport is not None and _unread(conn.transport) <= 0:
                conn._evict()
                self.server.stats.evicted_idle += 1
                return True
        return False

    def _evict(self) -> None:
        """Give this connection's place to another, telling its client: a 503 (come back)
        that it reads as the answer to the request it sends next, if any, then a lingering
        close. Closed without a word (before), the request a client wrote on it as it closed
        met nothing and was lost; the 503 is what the cap answers a new connection."""
        self.server.forget(self)
        if self.transport is None or self.refused:  # a refused one has had its answer
            return
        self.transport.write(_plain(503, b"Too many connections", [(b"retry-after", b"1")]))
        self._linger()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        self.transport = None
        self.queue.clear()
        self._disarm()
        # The parser holds this protocol (its callbacks) and this protocol holds the parser:
        # break the cycle so a closed connection and its buffers are freed at once, not at
        # the next full garbage collection.
        self.parser = None
        self.body = []
        self.headers = {}

    def data_received(self, data: bytes) -> None:
        if self.refused or self.parser is None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"Protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self.refused:
                self._fail(400, b"Invalid HTTP request: " + str(exc).encode())
        if self.pending is not None:  # a request is partly read: its deadline runs
            seconds, message = self.pending
            self.pending = None
            if self.reading and not self.refused:
                self._arm(seconds, message)

    # -- parser callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.reading = True
        self.server.idle.pop(self, None)
        self.url = b""
        self.parsed_url = None
        self.headers = {}
        self.head_size = 0
        self.body = []
        self.body_size = 0
        self.pending = (self.limits.head_timeout_s, b"Timed out reading the request headers")

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, n: int) -> None:
        self.head_size += n
        if self.head_size > self.limits.max_head and not self.refused:
            self._refuse(_plain_response(431, b"Request header fields too large"))

    def on_headers_complete(self) -> None:
        if self.refused or self.parser is None:
            return
        precheck = self.server.precheck
        if precheck is not None:
            self.parsed_url = httptools.parse_url(self.url)
            path = (self.parsed_url.path or b"/").decode("latin-1")
            refusal = precheck(self.parser.get_method().decode("ascii"), path, self.headers)
            if refusal is not None:
                self._refuse(refusal)
                return
            if not self.authenticated:
                self.authenticated = True
                self.server.unauthenticated.pop(self, None)
        length = self.headers.get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.limits.max_body:
            self._refuse(self._too_large())
            return
        self.pending = (self.limits.body_timeout_s, b"Timed out reading the request body")
        expect = self.headers.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self.body_size += len(body)
        if self.body_size > self.limits.max_body:
            self._refuse(self._too_large())
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused or self.parser is None:
            return
        self._disarm()
        self.pending = None
        self.reading = False
        url = self.parsed_url or httptools.parse_url(self.url)
        self.parsed_url = None
        request = Request(
            method=self.parser.get_method().decode("ascii"),
            path=(url.path or b"/").decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self.headers,
            body=b"".join(self.body),
        )
        self.body = []  # the joined copy is the only one kept
        self.headers = {}
        self.queue.append((request, self.parser.should_keep_alive(), None))
        if not self.busy:
            self._next()
        if self.queue and self.transport is not None and not self.paused:
            # Pipelined requests wait their turn with reading paused: one answered, one
            # parsed and waiting, and no more (before: 8 x 90 MiB on one connection held
            # 927 MB); TCP's window then slows the client down.
            self.paused = True
            self.transport.pause_reading()

    def _too_large(self) -> Response:
        return _plain_response(
            413, f"Request body larger than {self.limits.max_body} bytes".encode()
        )

    # -- handling --------------------------------------------------------------------
    def _next(self) -> None:
        if not self.queue or self.transport is None:
            self.busy = False
            if not self.refused and self.transport is not None:
                self.server.idle[self] = None  # the newest idle: taken back last
                if self.timer is None:
                    self._arm(self.limits.idle_close_s, None)
            return
        self.busy = True
        request, keep_alive, early = self.queue.popleft()
        if self.paused and not self.queue:
            self.paused = False
            self.transport.resume_reading()
        if early is not None:  # refused before its body: answer, then close gently
            status, headers, body = early
            self.transport.write(encode_response(status, headers, body, False))
            self.busy = False
            self._linger()
            return
        assert request is not None
        task = asyncio.get_running_loop().create_task(self._handle(request, keep_alive))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _handle(self, request: Request, keep_alive: bool) -> None:
        try:
            status, headers, body = await self.server.handler(request)
        except Exception as exc:  # a handler bug must not take the connection down silently
            status, headers = 500, [(b"content-type", b"text/plain")]
            body = f"front door error: {type(exc).__name__}: {exc}".encode()
        server = self.server
        keep_alive = (
            keep_alive and not server.stopping and len(server.connections) < self.limits.shed_at
        )
        if self.transport is None:
            return
        head_only = request.method == "HEAD"
        self.transport.write(
            encode_response(
                status, headers, body, keep_alive, head_only, self.server.keep_alive_header
            )
        )
        del request, body
        if not keep_alive:
            self.transport.close()
            self.transport = None
            return
        self._next()

    def _refuse(self, response: Response) -> None:
        """Answer `response` once the requests before it are answered, then stop reading."""
        self.refused = True
        self.body = []
        self._disarm()
        self.queue.append((None, False, response))
        if not self.busy:
            self._next()

    def _fail(self, status: int, message: bytes) -> None:
        """A malformed request: requests already parsed are answered first."""
        self._refuse(_plain_response(status, message))

    def _linger(self) -> None:
        """Half-close after a refusal and drain the input for LINGER_S, so the client can
        read the answer (closing with unread input would reset the connection)."""
        if self.transport is None:
            return
        self.refused = True
        self._disarm()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(LINGER_S, self._close)

    def _close(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _arm(self, seconds: float, message: bytes | None) -> None:
        """(Re)start the one timer a connection has: keep-alive idle (message None), or the
        deadline of the head or body being read (408 with `message`)."""
        self._disarm()
        if self.transport is not None:
            self.timer = asyncio.get_running_loop().call_later(seconds, self._expire, message)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self, message: bytes | None) -> None:
        self.timer = None
        if self.transport is None:
            return
        if message is None:
            if self.busy or self.reading:
                return
            if _unread(self.transport) > 0:
                # A request arrived as the idle time ran out (the loop has not read it yet):
                # serve it; closing now would reset the connection and lose it.
                self._arm(self.limits.idle_close_s, None)
                return
            self._close()
        else:
            self._refuse(_plain_response(408, message))


def _unread(transport: asyncio.Transport) -> int:
    """Bytes waiting in the kernel's receive buffer of a connection (FIONREAD)."""
    sock = transport.get_extra_info("socket")
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return 0
    return int.from_bytes(raw, sys.byteorder, signed=True)


def _plain_response(status: int, message: bytes, extra: Headers | None = None) -> Response:
    return status, [(b"content-type", b"text/plain"), *(extra or [])], message


def _plain(status: int, message: bytes, extra: Headers | None = None) -> bytes:
    return encode_response(*_plain_response(status, message, extra), False)


@dataclass(slots=True)
class ConnectionStats:
    """What the connection limits did since the server started (the daemon's `status`):
    an operator reading a soak's losses needs to know whether connections were taken back."""

    accepted: int = 0  # connections the server took from its socket
    peak: int = 0  # most connections open at once
    refused: int = 0  # answered 503 at the connection cap
    evicted_unauthenticated: int = 0  # closed to make room: no key shown yet
    evicted_idle: int = 0  # closed to make room: idle keep-alive

    def as_dict(self, open_now: int) -> dict[str, int]:
        return {
            "open": open_now,
            "accepted": self.accepted,
            "peak": self.peak,
            "refused": self.refused,
            "evicted_unauthenticated": self.evicted_unauthenticated,
            "evicted_idle": self.evicted_idle,
        }


class Server:
    """Serves `handler` on an already bound, listening socket until `stop()`."""

    def __init__(
        self, handler: Handler, precheck: Precheck | None = None, limits: Limits | None = None
    ) -> None:
        self.handler = handler
        self.precheck = precheck
        self.limits = limits or Limits()
        self.keep_alive_header = self.limits.keep_alive_header()
        self.connections: set[Connection] = set()
        # Connections without a key yet, oldest first (a dict keeps insertion order).
        self.unauthenticated: dict[Connection, None] = {}
        # Keep-alive connections between requests, longest idle first.
        self.idle: dict[Connection, None] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stats = ConnectionStats()
        self.stopping = False
        self._stop = asyncio.Event()

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.unauthenticated.pop(conn, None)
        self.idle.pop(conn, None)

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()

    async def serve(self, sock: socket.socket, grace_s: float = 10.0) -> None:
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
