"""Payload logging (`data_collector.collections.request/response`): no code in score.py.

A WSGI middleware around azmlinfsrv's Flask app, inside each gunicorn worker: for a sampled
`POST /score` it hands the request body and the response body (with the request's
`x-request-id` as correlation id, as azmlinfsrv answers it) to a background thread that posts
them to the instance's data-collector agent over one keep-alive connection, in batches
(`POST /modeldata/batch`, as the Collector's transport sends them). Best effort, as on
Azure: the queue is bounded and never blocks a request; payloads the agent cannot take are
dropped and counted, and the count goes to the instance log (stderr) at most every 10 s.
"""

from __future__ import annotations

import collections
import http.client
import io
import json
import os
import random
import sys
import threading
import time
from typing import Any

from amlocal.endpoints.instance.collector_transport import (
    BATCH_BYTES,
    BATCH_ITEMS,
    LINGER,
    MAX_BODY,
    encode_frame,
    post_batch,
)
from amlocal.guid import guid

QUEUE_SIZE = 1000
AGENT = "amlocal-payload-logging/1"


class Sender:
    """One background thread per worker posting payloads to the agent.

    A request hands its payloads over with a lock-free `deque.append` and wakes the thread
    only when it finds it asleep (the first payload after a batch left); the thread then
    waits LINGER for more and posts everything queued. With a `queue.Queue` each payload took
    its lock and woke the thread, which then took the GIL from the request: two wake-ups and
    GIL hand-offs per scoring request, ~108 us of worker CPU per request in all (against
    640 us without payload logging; measured at c16, 2 workers, a sink that drops payloads).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.items: collections.deque[tuple[dict[str, str], bytes]] = collections.deque()
        self.wake = threading.Event()
        self.dropped = 0
        self._reported = 0
        self._last_report = 0.0
        self._conn: http.client.HTTPConnection | None = None
        self._down_until = 0.0
        self._thread: threading.Thread | None = None
        # A forked worker (gunicorn --preload) starts its own thread: reset at the fork, not
        # checked with a getpid() system call on each of the two puts of every request.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.items.clear()  # a copy of the parent's, not this worker's to send
        self.wake = threading.Event()
        self._thread = None

    def put(self, headers: dict[str, str], body: bytes) -> None:
        if self._thread is None:  # started lazily, in the process that puts
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        if len(body) > MAX_BODY:  # the agent refuses it (Azure logs up to 4 MB inline)
            self.dropped += 1
            return
        if len(self.items) >= QUEUE_SIZE:  # bounded: a stalled agent never grows the worker
            self.dropped += 1
            return
        self.items.append((headers, body))
        if not self.wake.is_set():  # a plain read; set() takes a lock: once per batch
            self.wake.set()

    def _post(self, frames: list[bytes]) -> bool:
        """One `POST /modeldata/batch` with `frames` (collector_transport's framing)."""
        now = time.monotonic()
        if now < self._down_until:
            return False
        data = b"".join(frames)
        try:
            self._conn, status, _ = post_batch(self._conn, self.host, self.port, 2, data)
            return 200 <= status < 300
        except (OSError, http.client.HTTPException):
            self._conn = None
        self._down_until = time.monotonic() + 1.0  # do not hammer a dead agent
        return False

    def _run(self) -> None:
        """Post what is queued in batches: the first payload waits LINGER for more, then all
        that came go, BATCH_ITEMS / BATCH_BYTES to a POST. One POST per payload (two per
        scoring request) cost the worker a round trip and the agent a request parse each:
        payload logging measured 0.72x the endpoint's throughput at c16 (bench/serving.py,
        loaded box), as the Collector did before it batched."""
        while True:
            self.wake.wait()
            time.sleep(LINGER)
            self.wake.clear()  # before the drain: a payload put after it wakes the next round
            frames: list[bytes] = []
            size = 0
            while self.items:
                headers, body = self.items.popleft()
                frames.append(encode_frame(headers, body))
                size += len(frames[-1])
                if len(frames) >= BATCH_ITEMS or size >= BATCH_BYTES:
                    self._send(frames)
                    frames, size = [], 0
            if frames:
                self._send(frames)
            self._report()

    def _send(self, frames: list[bytes]) -> None:
        if not self._post(frames):
            self.dropped += len(frames)

    def _report(self) -> None:
        now = time.monotonic()
        if self.dropped != self._reported and now - self._last_report > 10:
            sys.stderr.write(
                f"amlocal data collector: {self.dropped} payload(s) dropped so far "
                f"(agent on port {self.port} unreachable or queue full)\n"
            )
            sys.stderr.flush()
            self._reported, self._last_report = self.dropped, now


class PayloadLogging:
    """WSGI middleware logging sampled /score requests and responses."""

    def __init__(self, app: Any, spec: dict[str, Any], sender: Sender) -> None:
        self.app = app
        self.rates = {k: float(v) / 100.0 for k, v in spec["collections"].items()}
        # (header name, its WSGI environ key), worked out once, not per request
        self.capture = [
            (h.lower(), "HTTP_" + h.upper().replace("-", "_"))
            for h in spec.get("capture_headers") or []
        ]
        self.sender = sender

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/score":
            return self.app(environ, start_response)
        draw = random.random()  # one draw per request: request and response go together
        wanted = [c for c, r in self.rates.items() if draw < r]
        if not wanted:
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["headers"] = headers
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        try:
            chunks = list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        try:
            self._log(environ, wanted, body, b"".join(chunks), seen.get("headers") or [])
        except Exception:  # noqa: BLE001 - logging must never fail a scoring request
            self.sender.dropped += 1
        return chunks

    def _log(
        self,
        environ: dict[str, Any],
        wanted: list[str],
        body: bytes,
        out: bytes,
        resp_headers: list[tuple[str, str]],
    ) -> None:
        rh = {k.lower(): v for k, v in resp_headers}
        rid = rh.get("x-request-id") or environ.get("HTTP_X_REQUEST_ID") or guid()
        now = str(int(time.time()))
        for collection in wanted:
            is_request = collection == "request"
            headers = {
                "Content-Type": (
                    environ.get("CONTENT_TYPE") if is_request else rh.get("content-type")
                )
                or "application/json",
                "trace-id": guid(),
                "ce-time": now,
                "ce-type": f"azureml.inference.{collection}",
                "ce-agent": AGENT,
                "ce-x-request-id": rid,
                "ce-path": environ.get("PATH_INFO", ""),
                "ce-method": environ.get("REQUEST_METHOD", ""),
            }
            if self.capture and is_request:
                got = {h: environ[key] for h, key in self.capture if environ.get(key) is not None}
                headers["ce-headers"] = json.dumps(got)
            self.sender.put(headers, body if is_request else out)


def wrap(app: Any) -> Any:
    """The app with payload logging, when the instance's agent asked for it."""
    spec = os.environ.get("AMLOCAL_MDC_PAYLOAD")
    if not spec:
        return app
    sender = Sender(
        os.environ.get("AZUREML_MDC_HOST", "127.0.0.1"), int(os.environ["AZUREML_MDC_PORT"])
    )
    return PayloadLogging(app, json.loads(spec), sender)
