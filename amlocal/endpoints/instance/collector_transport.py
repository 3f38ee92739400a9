"""The Collector's transport in a scoring worker: its payloads reach the local data-collector
agent (`amlocal.endpoints.collector`) in batches.

Measured on the shared 2-core box (issue 19, bench/serving.py
`collecting_throughput_vs_endpoint_c16`): one post per payload cost the agent ~506 us of
CPU per record, batches of 16 ~90 us; collecting/plain throughput at c16 went 0.57 -> 0.83
(one instance).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client

MAX_BODY = 4 * 1024 * 1024  # Azure logs payloads up to 4 MB inline

# The agent accepts records only with the token its instance got in this variable.
TOKEN_ENV = "AMLOCAL_MDC_TOKEN"
TOKEN_HEADER = "x-amlocal-mdc-token"
BATCH_PATH = "/modeldata/batch"  # amlocal's own route: many Collector payloads in one POST
BATCH_ITEMS = 256  # a batch goes out at this many payloads,
BATCH_BYTES = 1 << 20  # or this many bytes,
LINGER = 0.05  # or when the library's queue has stayed empty this long (seconds)
DOWN_FOR = 1.0  # after a failed post, payloads are dropped (and counted) this long


def encode_frame(headers: dict[str, str], body: bytes) -> bytes:
    """One payload of a batch: `<len(headers json)> <len(body)>\\n<headers json><body>`."""
    h = json.dumps(headers, separators=(",", ":")).encode()
    return b"%d %d\n" % (len(h), len(body)) + h + body


def decode_frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The payloads of a batch; ValueError when it is malformed."""
    out = []
    i, n = 0, len(data)
    while i < n:
        nl = data.index(b"\n", i)
        hl, bl = (int(v) for v in data[i:nl].split(b" "))
        start = nl + 1
        if hl < 0 or bl < 0 or start + hl + bl > n:
            raise ValueError("truncated batch")
        h = json.loads(data[start : start + hl])
        if not isinstance(h, dict):
            raise ValueError("frame headers must be an object")
        out.append(
            ({str(k).lower(): str(v) for k, v in h.items()}, data[start + hl : start + hl + bl])
        )
        i = start + hl + bl
    return out


class BatchTransport:
    """The Collector's transport in a scoring worker: payloads leave in batches.

    azureml-ai-monitoring's sender thread calls `MdcSender._post_request` once per payload,
    which posted each one on its own (a request and a response parse in the worker, a wakeup,
    a send and a parse in the agent, for each of a request's inputs and outputs).
    Here a payload joins the thread's pending batch; the batch is posted to the agent's
    `/modeldata/batch` when the library's queue is empty (after lingering up to LINGER for
    more), or at BATCH_ITEMS / BATCH_BYTES. Payloads, headers, the queue, sampling and the
    library's error handling are unchanged; only how bytes reach the agent differs.
    Best effort: one keep-alive connection with a 2 s timeout; a failed post drops its
    batch, and for DOWN_FOR afterwards payloads are dropped at once rather than each
    waiting on a dead or hung agent. Drops are counted and reported on stderr (the
    instance log) at most every 10 s.
    """

    timeout = 2.0  # seconds a post may take before the agent counts as down

    def __init__(self, host: str, port: int, queue_length: Any) -> None:
        self.host, self.port = host, port
        self.queue_length = queue_length  # the library queue's length(), or 0
        self.frames: list[bytes] = []
        self.size = 0
        self.since = 0.0
        self.conn: Any = None
        self.down_until = 0.0
        self.dropped = 0
        self._reported = 0
        self._last_report = 0.0

    def post(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        now = time.monotonic()
        if now < self.down_until:
            return self._drop(1, "agent unreachable")
        if len(body) > MAX_BODY:  # the agent refuses it (as Azure's does, inline)
            return self._drop(1, f"payload over {MAX_BODY} bytes", status=413)
        if not self.frames:
            self.since = now
        frame = encode_frame(headers, body)
        self.frames.append(frame)
        self.size += len(frame)
        if len(self.frames) < BATCH_ITEMS and self.size < BATCH_BYTES:
            if not self.queue_length():
                wait = self.since + LINGER - now
                if wait > 0:
                    time.sleep(wait)  # the GIL is free: the worker keeps scoring meanwhile
            if self.queue_length():
                return 202, "batched"
        return self.flush()

    def flush(self) -> tuple[int, str]:
        if not self.frames:
            return 200, "empty"
        data, count = b"".join(self.frames), len(self.frames)
        self.frames, self.size = [], 0
        import http.client

        try:
            self.conn, status, text = post_batch(
                self.conn, self.host, self.port, self.timeout, data
            )
        except (OSError, http.client.HTTPException) as exc:
            self.conn = None
            self.down_until = time.monotonic() + DOWN_FOR
            return self._drop(count, str(exc))
        if 200 <= status < 300:
            return status, text
        return self._drop(count, f"{status}: {text}", status=status)

    def _drop(self, count: int, why: str, status: int = 503) -> tuple[int, str]:
        self.dropped += count
        now = time.monotonic()
        if now - self._last_report > 10:
            sys.stderr.write(
                f"amlocal data collector: {self.dropped} Collector payload(s) dropped so far "
                f"(agent on port {self.port}: {why})\n"
            )
            sys.stderr.flush()
            self._reported, self._last_report = self.dropped, now
        return status, why


def batching_transport() -> None:
    """Give the Collector's sender a BatchTransport per sender thread (see there)."""
    import threading
    from urllib.parse import urlsplit

    from azureml.ai.monitoring.queue import queue as mdc_queue
    from azureml.ai.monitoring.worker import sender

    local = threading.local()

    def queue_length() -> int:
        q = mdc_queue.get_queue()
        return q.length() if q is not None else 0

    def post(self: Any, url: str, payload: Any, headers: dict[str, str] | None = None) -> Any:
        t = getattr(local, "t", None)
        if t is None:
            u = urlsplit(url)
            t = local.t = BatchTransport(u.hostname or "127.0.0.1", u.port or 80, queue_length)
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
        return t.post(headers or {}, body)

    sender.MdcSender._post_request = post


def post_batch(
    conn: http.client.HTTPConnection | None, host: str, port: int, timeout: float, data: bytes
) -> tuple[http.client.HTTPConnection, int, str]:
    """POST one batch of frames to the agent on a kept-alive connection, reconnecting once
    if the agent closed it: (the connection to keep, status, body). The second failure
    raises (OSError or http.client.HTTPException), with the connection closed."""
    import http.client

    for attempt in range(2):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request(
                "POST",
                BATCH_PATH,
                body=data,
                headers={
                    "Content-Type": "application/x-amlocal-mdc-batch",
                    TOKEN_HEADER: os.environ.get(TOKEN_ENV, ""),
                },
            )
            resp = conn.getresponse()
            return conn, resp.status, resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            if attempt:
                raise
    raise AssertionError("unreachable")
