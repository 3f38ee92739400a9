"""The endpoint's front door: what Azure's managed-endpoint front end does, as raw ASGI.

azmlinfsrv has no auth and no routing; Azure adds them in front of it, and so does this:
Bearer key check (401), the `azureml-model-deployment` header, weighted traffic and mirror
traffic, 404 when nothing takes traffic, `request_timeout_ms` -> 408, more than
2 x max_concurrent_requests_per_instance x instance_count in flight -> 429, any non-200 from
the model server -> 424 with its status and reason in `ms-azureml-model-error-*` headers,
and a fresh GUID `x-request-id`. Raw ASGI plus a raw asyncio upstream connection keeps the
added cost per request small next to azmlinfsrv's own (serving.md, section 4).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from amlocal.endpoints.keys import bearer_ok

CONTROL_PREFIX = "/.amlocal/control/"
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


class UpstreamBroken(Exception):
    """The instance closed the connection without a complete response (it crashed)."""


@dataclass
class Route:
    """One deployment as the front door sees it."""

    name: str
    instances: list[Any]  # instances.Instance
    timeout_s: float
    max_inflight: int
    inflight: int = 0
    rr: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    on_down: Callable[[Any], None] | None = None

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
    """The ASGI app. `table` is swapped by the daemon; `control` handles /.amlocal/control/."""

    def __init__(self, table: Table, control_token: str, control: Control) -> None:
        self.table = table
        self._control_token = control_token.encode()
        self._control = control
        self._background: set[asyncio.Task] = set()
        self.mirrored = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        body = await _read_body(receive)
        if scope["path"].startswith(CONTROL_PREFIX):
            await self._handle_control(scope, headers, send)
            return
        request_id = str(uuid.uuid4())
        extra = [(b"x-request-id", request_id.encode())]
        client_id = headers.get(b"x-ms-client-request-id")
        if client_id is not None:
            client_id = _CLIENT_ID.sub(b"", client_id)[:40]
            extra.append((b"x-ms-client-request-id", client_id))
        table = self.table
        if table.auth_mode == "key" and not bearer_ok(headers.get(b"authorization"), table.keys):
            await _json(send, 401, "Unauthorized: missing or invalid key", extra)
            return
        named = headers.get(b"azureml-model-deployment")
        if named:
            name = named.decode("latin-1").strip()
            if name not in table.routes:
                await _json(send, 404, f"Deployment '{name}' not found on this endpoint", extra)
                return
        else:
            name = table.choose()
            if name is None or name not in table.routes:
                await _json(
                    send,
                    404,
                    "No valid deployments to route to. Please check that the endpoint has at "
                    "least one deployment with positive weight values or use a deployment "
                    "specific header to route.",
                    extra,
                )
                return
        route = table.routes[name]
        extra.append((b"azureml-model-deployment", name.encode()))
        if route.inflight >= route.max_inflight:
            await _json(send, 429, "Too many pending requests for this deployment", extra)
            return
        head = _request_head(scope, headers, len(body), request_id, client_id)
        if not named and table.mirror is not None:
            mname, pct = table.mirror
            mroute = table.routes.get(mname)
            if mroute is not None and random.random() * 100 < pct:
                self._mirror(mroute, head, body)
        route.inflight += 1
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path.
            async with asyncio.timeout(route.timeout_s):
                status, reason, up_headers, up_body = await _call(route, head, body)
        except TimeoutError:
            await _json(
                send, 408, f"Request timed out after {route.timeout_s * 1000:.0f} ms", extra
            )
            return
        except UpstreamBroken as exc:
            await _json(send, 502, f"The model server closed the connection: {exc}", extra)
            return
        finally:
            route.inflight -= 1
        out = [(k, v) for k, v in up_headers if k not in _DROP_RESPONSE]
        if status != 200:
            out.append((b"ms-azureml-model-error-statuscode", str(status).encode()))
            out.append((b"ms-azureml-model-error-reason", reason))
            status = 424
        out.extend(extra)
        out.append((b"content-length", str(len(up_body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": up_body})

    def _mirror(self, route: Route, head: bytes, body: bytes) -> None:
        """Fire-and-forget copy; the response is dropped, as Azure drops mirrored responses."""
        if route.inflight >= route.max_inflight:
            return

        async def go() -> None:
            route.inflight += 1
            try:
                await asyncio.wait_for(_call(route, head, body), route.timeout_s)
                self.mirrored += 1
            except Exception:
                pass
            finally:
                route.inflight -= 1

        task = asyncio.ensure_future(go())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle_control(self, scope: dict, headers: dict, send: Callable) -> None:
        import hmac

        token = headers.get(b"x-amlocal-control", b"")
        if not hmac.compare_digest(token, self._control_token):
            await _json(send, 401, "Unauthorized", [])
            return
        verb = scope["path"][len(CONTROL_PREFIX) :]
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
        status, payload = await self._control(verb, query)
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Callable) -> bytes:
    msg = await receive()
    body = msg.get("body", b"")
    if not msg.get("more_body"):
        return body
    chunks = [body]
    while msg.get("more_body"):
        msg = await receive()
        chunks.append(msg.get("body", b""))
    return b"".join(chunks)


def _request_head(
    scope: dict, headers: dict, length: int, request_id: str, client_id: bytes | None
) -> bytes:
    target = scope.get("raw_path") or scope["path"].encode()
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    lines = [scope["method"].encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [k + b": " + v for k, v in headers.items() if k not in _DROP_REQUEST]
    lines.append(b"x-request-id: " + request_id.encode())
    if client_id:
        lines.append(b"x-ms-client-request-id: " + client_id)
    lines.append(b"content-length: " + str(length).encode())
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _call(route: Route, head: bytes, body: bytes) -> tuple[int, bytes, list, bytes]:
    """Send to a ready instance; while none is ready (starting, restarting) wait for one.
    The caller's timeout bounds the wait, as Azure's request timeout does."""
    while True:
        inst = route.pick()
        if inst is None:
            await route.changed.wait()
            continue
        try:
            return await _forward(inst.port, head, body)
        except ConnectionRefusedError:
            inst.ready = False
            if route.on_down is not None:
                route.on_down(inst)


async def _forward(port: int, head: bytes, body: bytes) -> tuple[int, bytes, list, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            writer.write(body)
        raw = await reader.read()  # azmlinfsrv closes every connection after its response
    finally:
        writer.close()
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise UpstreamBroken(f"{len(raw)} bytes without a complete HTTP head")
    lines = raw[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else HTTPStatus(status).phrase.encode()
    hdrs = []
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        v = v.strip()
        if k == b"content-length":
            length = int(v)
        hdrs.append((k, v))
    body_out = raw[end + 4 :]
    if length is not None:
        if len(body_out) < length:
            raise UpstreamBroken(f"body cut at {len(body_out)} of {length} bytes")
        body_out = body_out[:length]
    return status, reason, hdrs, body_out


async def _json(send: Callable, status: int, message: str, extra: list) -> None:
    body = json.dumps({"message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
