"""The endpoint's front door: what Azure's managed-endpoint front end does.

azmlinfsrv has no auth and no routing; Azure adds them in front of it, and so does this:
Bearer key check (401), the `azureml-model-deployment` header, weighted traffic and mirror
traffic, 404 when nothing takes traffic, `request_timeout_ms` -> 408, at most
2 x max_concurrent_requests_per_instance x instance_count requests in flight to the
instances, the next ones queued up to `max_queue_wait_ms` for a free place and then 429
(as are those beyond a bounded queue), any non-200 from the model server -> 424 with its
status and reason in `ms-azureml-model-error-*` headers, and a fresh GUID `x-request-id`.
`listener.py` serves it over HTTP; a bare asyncio Protocol per upstream request keeps the
added cost small next to azmlinfsrv's own (serving.md, 4).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from amlocal.endpoints.daemon.listener import Headers, Request, Response
from amlocal.endpoints.keys import bearer_ok
from amlocal.guid import guid

CONTROL_PREFIX = "/.amlocal/control/"
STARTING_WAIT_S = 120.0
# Request headers the front door consumes or rewrites instead of passing on.
_DROP_REQUEST = {
    b"host",
    b"authorization",
    b"connection",
    b"keep-alive",
    b"content-length",
    b"transfer-encoding",
    b"te",
    b"upgrade",
    b"expect",
    b"x-request-id",
    b"x-ms-client-request-id",
    b"azureml-model-deployment",
    b"x-amlocal-instance",
}
_DROP_RESPONSE = {
    b"connection",
    b"keep-alive",
    b"content-length",
    b"transfer-encoding",
    b"date",
    b"server",
    b"x-request-id",
    b"x-ms-request-id",
}
_CLIENT_ID = re.compile(rb"[^A-Za-z0-9_-]")
_STATUSES = {s.value for s in HTTPStatus}


class UpstreamBroken(Exception):
    """The instance closed the connection without a complete response (it crashed)."""


@dataclass
class Route:
    """One deployment as the front door sees it."""

    name: str
    instances: list[Any]  # instances.Instance
    timeout_s: float
    max_inflight: int
    # Azure's request_settings.max_queue_wait_ms (default 500): how long a request may wait
    # for a place in flight before it is answered 429.
    queue_wait_s: float = 0.5
    # Requests waiting at most: each holds its body, so the queue is bounded in count too
    # (default: as many as may be in flight, set by the daemon).
    max_queued: int = 0
    inflight: int = 0
    rr: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    on_down: Callable[[Any], None] | None = None
    # Waiting requests, oldest first; a place freed is handed to the first one directly.
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)

    def try_acquire(self) -> bool:
        """Take a place in flight if one is free and nobody waits for it (FIFO)."""
        if self.inflight < self.max_inflight and not self.waiting:
            self.inflight += 1
            return True
        return False

    async def acquire(self) -> bool:
        """A place in flight, waiting up to `queue_wait_s` in a bounded FIFO queue for one
        to be freed. False: the queue is full or the wait ran out (the caller answers 429)."""
        if self.try_acquire():
            return True
        if len(self.waiting) >= self.max_queued or self.queue_wait_s <= 0:
            return False
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(place)
        try:
            async with asyncio.timeout(self.queue_wait_s):
                await place
            return True
        except BaseException as exc:  # the queue wait ran out, or the request's timeout
            if place.done() and not place.cancelled():
                # Handed a place as the wait ended: pass it on, it is not ours to keep.
                self.release()
            else:
                place.cancel()
                with contextlib.suppress(ValueError):
                    self.waiting.remove(place)
            if isinstance(exc, TimeoutError):
                return False
            raise

    def release(self) -> None:
        """Give a place back: to the oldest waiting request if any, else to the pool."""
        while self.waiting:
            place = self.waiting.popleft()
            if not place.done():
                place.set_result(None)  # the place moves over: inflight is unchanged
                return
        self.inflight -= 1

    def pick(self) -> Any | None:
        """Round-robin over ready instances."""
        n = len(self.instances)
        for _ in range(n):
            self.rr = (self.rr + 1) % n
            inst = self.instances[self.rr]
            if inst.ready:
                return inst
        return None

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class Table:
    """Everything routing needs; replaced as a whole on reload, never mutated in place."""

    keys: tuple[bytes, ...] = ()
    auth_mode: str = "key"
    traffic: list[tuple[float, str]] = field(default_factory=list)  # (cumulative %, name)
    mirror: tuple[str, float] | None = None
    routes: dict[str, Route] = field(default_factory=dict)

    def choose(self) -> str | None:
        if not self.traffic:
            return None
        r = random.random() * self.traffic[-1][0]
        for cum, name in self.traffic:
            if r < cum:
                return name
        return self.traffic[-1][1]


def traffic_table(traffic: dict[str, int]) -> list[tuple[float, str]]:
    out, cum = [], 0.0
    for name, pct in sorted(traffic.items()):
        if pct and pct > 0:
            cum += pct
            out.append((cum, name))
    return out


Control = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]


class FrontDoor:
    """The request handler. `table` is swapped by the daemon; `control` serves
    /.amlocal/control/."""

    def __init__(
        self, table: Table, control_token: str, control: Control, instance_token: str = ""
    ) -> None:
        self.table = table
        self._control_token = control_token.encode()
        # Sent on every request to an instance, which refuses requests without it.
        self._instance_line = (
            b"x-amlocal-instance: " + instance_token.encode() if instance_token else b""
        )
        self._control = control
        self._background: set[asyncio.Task[Any]] = set()
        self.mirrored = 0
        # Set once the deployments are loaded: a request that arrives while the daemon starts
        # waits for them (a valid key is never answered 401, nor a routed request 404).
        self.loaded = asyncio.Event()
        self.loaded.set()  # the daemon clears it until its first reload is done

    def precheck(self, method: str, path: str, headers: dict[bytes, bytes]) -> Response | None:
        """The key check, done by the listener when the headers arrive: a request without a
        valid key is answered 401 before its body is read."""
        if path.startswith(CONTROL_PREFIX):
            if not hmac.compare_digest(headers.get(b"x-amlocal-control", b""), self._control_token):
                return _json(401, "Unauthorized", [])
            return None
        table = self.table
        if table.auth_mode == "key" and not bearer_ok(headers.get(b"authorization"), table.keys):
            return _json(
                401, "Unauthorized: missing or invalid key", [(b"x-request-id", _request_id())]
            )
        return None

    async def handle(self, req: Request) -> Response:
        headers = req.headers
        if req.path.startswith(CONTROL_PREFIX):
            return await self._handle_control(req)
        request_id = _request_id()
        extra = [(b"x-request-id", request_id)]
        client_id = headers.get(b"x-ms-client-request-id")
        if client_id is not None:
            client_id = _CLIENT_ID.sub(b"", client_id)[:40]
            extra.append((b"x-ms-client-request-id", client_id))
        table = self.table
        if table.auth_mode == "key" and not bearer_ok(headers.get(b"authorization"), table.keys):
            return _json(401, "Unauthorized: missing or invalid key", extra)
        if not self.loaded.is_set():
            try:
                async with asyncio.timeout(STARTING_WAIT_S):
                    await self.loaded.wait()
            except TimeoutError:
                return _json(503, "The endpoint is starting; retry shortly", extra)
            table = self.table
        named = headers.get(b"azureml-model-deployment")
        if named:
            name = named.decode("latin-1").strip()
            if name not in table.routes:
                return _json(404, f"Deployment '{name}' not found on this endpoint", extra)
        else:
            chosen = table.choose()
            if chosen is None or chosen not in table.routes:
                return _json(
                    404,
                    "No valid deployments to route to. Please check that the endpoint has at "
                    "least one deployment with positive weight values or use a deployment "
                    "specific header to route.",
                    extra,
                )
            name = chosen
        route = table.routes[name]
        extra.append((b"azureml-model-deployment", name.encode()))
        head = _request_head(req, request_id, client_id, self._instance_line)
        if not named and table.mirror is not None:
            mname, pct = table.mirror
            mroute = table.routes.get(mname)
            if mroute is not None and random.random() * 100 < pct:
                self._mirror(mroute, head, req.body)
        placed = False
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path. The
            # request timeout covers the queue wait too, as Azure's does ("increase
            # request_timeout_ms to account for any networking/queue delays").
            async with asyncio.timeout(route.timeout_s):
                placed = route.try_acquire() or await route.acquire()
                if not placed:
                    return _json(429, "Too many pending requests for this deployment", extra)
                status, reason, up_headers, up_body = await _call(route, head, req.body)
        except TimeoutError:
            return _json(408, f"Request timed out after {route.timeout_s * 1000:.0f} ms", extra)
        except UpstreamBroken as exc:
            return _json(502, f"The model server closed the connection: {exc}", extra)
        finally:
            if placed:
                route.release()
        out = [(k, v) for k, v in up_headers if k not in _DROP_RESPONSE]
        if status != 200:
            out.append((b"ms-azureml-model-error-statuscode", str(status).encode()))
            out.append((b"ms-azureml-model-error-reason", reason))
            status = 424
        out.extend(extra)
        return status, out, up_body

    def _mirror(self, route: Route, head: bytes, body: bytes) -> None:
        """Fire-and-forget copy; the response is dropped, as Azure drops mirrored responses."""
        if not route.try_acquire():  # a copy never queues: dropped when the route is full
            return

        async def go() -> None:
            try:
                await asyncio.wait_for(_call(route, head, body), route.timeout_s)
                self.mirrored += 1
            except Exception:
                pass
            finally:
                route.release()

        task = asyncio.ensure_future(go())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle_control(self, req: Request) -> Response:
        token = req.headers.get(b"x-amlocal-control", b"")
        if not hmac.compare_digest(token, self._control_token):
            return _json(401, "Unauthorized", [])
        verb = req.path[len(CONTROL_PREFIX) :]
        query = dict(p.split("=", 1) for p in req.query.split("&") if "=" in p)
        status, payload = await self._control(verb, query)
        return status, [(b"content-type", b"application/json")], json.dumps(payload).encode()


def _request_id() -> bytes:
    """A version-4 GUID, as Azure puts in `x-request-id`."""
    return guid().encode()


def _request_head(
    req: Request, request_id: bytes, client_id: bytes | None, instance_line: bytes = b""
) -> bytes:
    target = req.path.encode("latin-1")
    if req.query:
        target += b"?" + req.query.encode("latin-1")
    lines = [req.method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [k + b": " + v for k, v in req.headers.items() if k not in _DROP_REQUEST]
    lines.append(b"x-request-id: " + request_id)
    if client_id:
        lines.append(b"x-ms-client-request-id: " + client_id)
    if instance_line:
        lines.append(instance_line)
    lines.append(b"content-length: " + str(len(req.body)).encode())
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _call(route: Route, head: bytes, body: bytes) -> tuple[int, bytes, list[Any], bytes]:
    """Send to a ready instance; while none is ready (starting, restarting) wait for one.
    The caller's timeout bounds the wait, as Azure's request timeout does."""
    while True:
        inst = route.pick()
        if inst is None:
            await route.changed.wait()
            continue
        try:
            if inst_socket := getattr(inst, "socket", ""):
                try:
                    return await _forward(inst_socket, head, body)
                except FileNotFoundError:  # it did not bind one: TCP from now on
                    inst.socket = ""
            return await _forward(inst.port, head, body)
        except ConnectionRefusedError:
            inst.ready = False
            if route.on_down is not None:
                route.on_down(inst)


class _Upstream(asyncio.Protocol):
    """One request to an instance: write it, collect bytes until the answer is whole.

    A bare Protocol rather than asyncio streams: no StreamReader/Writer objects and no read
    loop per request (about a third of the front door's CPU per request went there). An
    answer with a Content-Length is whole when its last byte arrives: the connection is
    closed then, not when the instance's close is read (one read and, as often as not, one
    more wake-up of the loop per request: bench/serving.py, front door CPU per request).
    Other answers (chunked, no length) end at the instance's close, as before.
    """

    __slots__ = ("request", "chunks", "size", "need", "head", "done", "transport")

    def __init__(self, request: bytes, done: asyncio.Future[Any]) -> None:
        self.request = request
        self.chunks: list[bytes] = []
        self.size = 0
        self.need = 0  # bytes of the whole answer; 0: head not read yet, -1: until close
        self.head: _Head | None = None
        self.done = done
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.need == 0:
            raw = data if len(self.chunks) == 1 else b"".join(self.chunks)
            try:
                self.head = _read_head(raw)
            except UpstreamBroken as exc:  # raised here, the loop would only log it
                if not self.done.done():
                    self.done.set_exception(exc)
                assert self.transport is not None
                self.transport.close()
                return
            if self.head is None:
                return
            self.need = self.head.size(self.request.startswith(b"HEAD "))
        if 0 < self.need <= self.size:
            self._finish()
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result((b"".join(self.chunks), self.head))


async def _forward(to: int | str, head: bytes, body: bytes) -> tuple[int, bytes, list[Any], bytes]:
    """One request to an instance, over its Unix socket (`to` a path: loopback.SOCKET_ENV)
    or its TCP port on 127.0.0.1."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def upstream() -> _Upstream:
        return _Upstream(head + body, done)

    if isinstance(to, str):
        transport, _ = await loop.create_unix_connection(upstream, to)
    else:
        transport, _ = await loop.create_connection(upstream, "127.0.0.1", to)
    try:
        raw, parsed = await done  # whole by its length, or the instance closed
    finally:
        transport.close()
    return _parse(raw, head, parsed)


@dataclass(slots=True)
class _Head:
    """The model server's status line and headers, and how its body is framed."""

    end: int  # offset of the blank line ending the head
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    length: int | None
    chunked: bool

    def size(self, head_request: bool) -> int:
        """Bytes of the whole answer, or -1 when only the instance's close ends it."""
        if head_request or self.status in (204, 304):
            return self.end + 4
        if self.chunked or self.length is None:
            return -1
        return self.end + 4 + self.length


def _read_head(raw: bytes) -> _Head | None:
    """The head of an answer, None until all of it has arrived."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = raw[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise UpstreamBroken(f"malformed status line {lines[0][:80]!r}") from None
    if len(parts) > 2:
        reason = parts[2]
    else:
        reason = HTTPStatus(status).phrase.encode() if status in _STATUSES else b""
    hdrs = []
    length = None
    chunked = False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        v = v.strip()
        if k == b"content-length":
            length = int(v) if v.isdigit() else None
        elif k == b"transfer-encoding":
            chunked = v.lower().endswith(b"chunked")
        hdrs.append((k, v))
    return _Head(end, status, reason, hdrs, length, chunked)


def _parse(raw: bytes, head: bytes, parsed: _Head | None) -> tuple[int, bytes, list[Any], bytes]:
    """The model server's whole answer (`parsed`: its head, None if it never came whole):
    status, reason, headers and body."""
    if parsed is None:
        raise UpstreamBroken(f"{len(raw)} bytes without a complete HTTP head")
    status, reason, hdrs = parsed.status, parsed.reason, parsed.headers
    body_out = raw[parsed.end + 4 :]
    if head.startswith(b"HEAD ") or status in (204, 304):
        return status, reason, hdrs, b""
    if parsed.chunked:  # azmlinfsrv streams a generator's answer (gunicorn chunks it)
        return status, reason, hdrs, _dechunk(body_out)
    if parsed.length is not None:
        if len(body_out) < parsed.length:
            raise UpstreamBroken(f"body cut at {len(body_out)} of {parsed.length} bytes")
        body_out = body_out[: parsed.length]
    return status, reason, hdrs, body_out


def _dechunk(data: bytes) -> bytes:
    """A chunked body's content (RFC 9112, 7.1; trailers dropped). Before, the chunks' framing
    was passed on as the body, and a stream the instance cut short (no last chunk) as a 200."""
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise UpstreamBroken(f"chunked body cut after {sum(map(len, out))} bytes")
        try:
            size = int(data[pos:eol].split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise UpstreamBroken("malformed chunked body") from None
        pos = eol + 2
        if size == 0:
            return b"".join(out)
        if size < 0 or len(data) < pos + size + 2:
            raise UpstreamBroken(f"chunked body cut after {sum(map(len, out))} bytes")
        out.append(data[pos : pos + size])
        pos += size + 2


def _json(status: int, message: str, extra: Headers) -> Response:
    body = json.dumps({"message": message}).encode()
    return status, [(b"content-type", b"application/json"), *extra], body
