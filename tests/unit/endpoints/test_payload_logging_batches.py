"""Payload logging's sender posts batches (issue 33): one POST per payload (two per scoring
request) cost payload logging 28 % of the endpoint's throughput at c16, as it had cost the
Collector before its transport batched. A real HTTP server on 127.0.0.1 stands in for the
agent and records what arrives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from amlocal.endpoints.instance import collector_transport as ct
from amlocal.endpoints.instance.payload_logging import Sender


class _Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the agent
    posts: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["content-length"]))
        self.posts.append((self.path, self.headers.get(ct.TOKEN_HEADER, ""), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def agent() -> Iterator[ThreadingHTTPServer]:
    _Agent.posts = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_payloads_reach_the_agent_in_batches_with_their_headers(agent, monkeypatch) -> None:
    monkeypatch.setenv(ct.TOKEN_ENV, "tok")
    sender = Sender("127.0.0.1", agent.server_address[1])
    sent = [
        ({"ce-type": "azureml.inference.request", "trace-id": str(i)}, b"%d" % i) for i in range(20)
    ]
    for headers, body in sent:
        sender.put(headers, body)
    got = _received(len(sent))
    assert [b for _, b in got] == [b for _, b in sent]  # all of them, in order
    assert [h["trace-id"] for h, _ in got] == [str(i) for i in range(20)]
    assert {(path, token) for path, token, _ in _Agent.posts} == {(ct.BATCH_PATH, "tok")}
    assert len(_Agent.posts) < len(sent)  # before: one POST /modeldata/log per payload
    assert sender.dropped == 0


def test_a_payload_over_the_agents_limit_is_dropped_and_counted(agent) -> None:
    sender = Sender("127.0.0.1", agent.server_address[1])
    sender.put({"ce-type": "azureml.inference.response"}, b"x" * (ct.MAX_BODY + 1))
    assert sender.dropped == 1


def _received(n: int, seconds: float = 10) -> list[tuple[dict[str, str], bytes]]:
    deadline = time.monotonic() + seconds
    got: list[tuple[dict[str, str], bytes]] = []
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.02)
        got = [f for _, _, body in list(_Agent.posts) for f in ct.decode_frames(body)]
    return got


def test_a_payload_put_after_a_batch_left_goes_in_the_next_one(agent) -> None:
    """The thread sleeps between batches and is woken by the first payload after one left:
    a payload put then is never left behind."""
    sender = Sender("127.0.0.1", agent.server_address[1])
    for round_ in range(3):
        sender.put({"trace-id": str(round_)}, b"%d" % round_)
        assert [b for _, b in _received(round_ + 1)] == [b"%d" % i for i in range(round_ + 1)]
    assert len(_Agent.posts) == 3
    assert sender.dropped == 0


def test_the_queue_is_bounded_and_what_it_cannot_hold_is_counted(agent, monkeypatch) -> None:
    """Payloads put faster than they leave (the thread waits LINGER before it posts) stop
    at QUEUE_SIZE: the rest are dropped and counted, never held."""
    from amlocal.endpoints.instance import payload_logging

    monkeypatch.setattr(payload_logging, "LINGER", 2.0)  # nothing leaves while we put
    sender = Sender("127.0.0.1", agent.server_address[1])
    for i in range(payload_logging.QUEUE_SIZE + 10):
        sender.put({"trace-id": str(i)}, b"x")
    assert sender.dropped == 10
    assert len(_received(payload_logging.QUEUE_SIZE)) == payload_logging.QUEUE_SIZE


def test_a_forked_worker_posts_with_a_thread_of_its_own(agent) -> None:
    """gunicorn --preload forks workers from a process that may have put already: the child
    starts its own sender thread (the parent's is not copied by fork) and drops the parent's
    queued payloads, which are the parent's to send."""
    import os

    sender = Sender("127.0.0.1", agent.server_address[1])
    sender.put({"trace-id": "parent"}, b"parent")
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            sender.put({"trace-id": "child"}, b"child")
            time.sleep(1.0)  # LINGER, then the post
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    got = _received(2)
    assert sorted(b for _, b in got) == [b"child", b"parent"]
