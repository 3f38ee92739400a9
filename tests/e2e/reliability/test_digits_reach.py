"""The digits scoring script reads no file and reaches no host a caller names (issue 20,
items 1 and 6): file:// is off unless DIGITS_FILE_ROOT is set, and then only regular files
under it, read to at most the limit + 1 byte; URL fetches share one deadline, follow only
http(s) redirects, refuse non-public addresses unless allowed, and fail with one message."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
PNG = (REPO / "data" / "digits" / "1" / "0001.png").read_bytes()


def load_score(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """A fresh copy of src/score_digits/score.py, its settings read from `env`."""
    for k in (
        "DIGITS_FILE_ROOT",
        "DIGITS_ALLOW_PRIVATE_URLS",
        "DIGITS_URL_TIMEOUT_S",
        "DIGITS_DECODE_TIMEOUT_S",
    ):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(REPO / "src" / "score_digits"))
    spec = importlib.util.spec_from_file_location(
        "digits_score_under_test", REPO / "src" / "score_digits" / "score.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_file_urls_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    score = load_score(monkeypatch)
    for url in ("file:///etc/passwd", "file:///dev/zero", (REPO / "data").as_uri()):
        with pytest.raises(score.BadRequest, match="scheme 'file' is not one of http, https"):
            score.fetch_url(url, "request")


def test_file_urls_read_only_regular_files_under_the_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "ok.png").write_bytes(PNG)
    (tmp_path / "big.bin").write_bytes(b"x" * 4096)
    os.mkfifo(tmp_path / "fifo")  # no writer: an unbounded open/read would block for ever
    (tmp_path / "zero").symlink_to("/dev/zero")
    score = load_score(monkeypatch, DIGITS_FILE_ROOT=str(tmp_path))
    score.MAX_IMAGE_BYTES = 1024
    assert score.fetch_url((tmp_path / "ok.png").as_uri(), "r") == PNG[:1025] or len(PNG) > 1024
    with pytest.raises(score.BadRequest, match="larger than 1024 bytes"):
        score.fetch_url((tmp_path / "big.bin").as_uri(), "r")
    started = time.monotonic()
    with pytest.raises(score.BadRequest, match="not a readable regular file"):
        score.fetch_url((tmp_path / "fifo").as_uri(), "r")
    assert time.monotonic() - started < 5
    with pytest.raises(score.BadRequest, match="must be under DIGITS_FILE_ROOT"):
        score.fetch_url((tmp_path / "zero").as_uri(), "r")  # resolves to /dev/zero
    for outside in ("file:///dev/zero", "file:///etc/shadow", f"file://{tmp_path}/../x"):
        with pytest.raises(score.BadRequest, match="must be under DIGITS_FILE_ROOT"):
            score.fetch_url(outside, "r")


def test_a_fed_fifo_under_the_root_is_refused_not_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fifo = tmp_path / "fed"
    os.mkfifo(fifo)
    score = load_score(monkeypatch, DIGITS_FILE_ROOT=str(tmp_path))
    score.MAX_IMAGE_BYTES = 1024
    stop = threading.Event()

    def feed() -> None:
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.01)
                continue
            try:
                os.write(fd, b"y" * 65536)
            except OSError:
                pass
            os.close(fd)

    t = threading.Thread(target=feed)
    t.start()
    try:
        with pytest.raises(score.BadRequest, match="not a readable regular file"):
            score.fetch_url(fifo.as_uri(), "r")
    finally:
        stop.set()
        t.join()


# -- URLs -------------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/img.png":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/") :])
            self.end_headers()
        elif self.path == "/slow":  # one byte every 0.4 s: each read is quick, the whole is not
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.4)
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture()
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_loopback_and_private_hosts_are_refused_by_default(
    monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    score = load_score(monkeypatch)
    for url in (
        f"{site}/img.png",
        "http://10.0.0.1/x.png",
        "http://[::1]/x",
        "http://169.254.169.254/",
    ):
        with pytest.raises(score.BadRequest, match="cannot fetch the URL"):
            score.fetch_url(url, "r")


def test_open_and_closed_ports_get_the_same_message(
    monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    score = load_score(monkeypatch, DIGITS_ALLOW_PRIVATE_URLS="1")
    assert score.fetch_url(f"{site}/img.png", "r") == PNG
    messages = set()
    for url in (f"{site}/missing", f"http://127.0.0.1:{_closed_port()}/x.png"):
        with pytest.raises(score.BadRequest) as info:
            score.fetch_url(url, "r")
        messages.add(str(info.value))
    assert len(messages) == 1, messages


def test_redirects_are_followed_only_to_http(monkeypatch: pytest.MonkeyPatch, site: str) -> None:
    score = load_score(monkeypatch, DIGITS_ALLOW_PRIVATE_URLS="1")
    assert score.fetch_url(f"{site}/to/{site}/img.png", "r") == PNG
    for target in ("ftp://127.0.0.1/x.png", "file:///etc/passwd", "gopher://127.0.0.1/"):
        with pytest.raises(score.BadRequest, match="scheme '(ftp|file|gopher)'"):
            score.fetch_url(f"{site}/to/{target}", "r")


def test_a_slow_sender_is_cut_off_at_the_total_deadline(
    monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    score = load_score(monkeypatch, DIGITS_ALLOW_PRIVATE_URLS="1", DIGITS_URL_TIMEOUT_S="1")
    started = time.monotonic()
    with pytest.raises(score.BadRequest, match="cannot fetch the URL"):
        score.fetch_url(f"{site}/slow", "r")
    assert time.monotonic() - started < 5  # 50 bytes at 0.4 s each would take 20 s


# -- bounded work per request (issue 32, item 2) -----------------------------------------
@contextlib.contextmanager
def dripping_server(head: bytes, drip: bytes) -> Iterator[str]:
    """A raw HTTP server on 127.0.0.1 that sends `head` then one byte of `drip` every 0.2 s
    (for up to 60 s): each read is quick, the response never ends."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(head)
                    for i in range(300):
                        if stop.is_set():
                            return
                        conn.sendall(drip[i % len(drip) : i % len(drip) + 1])
                        time.sleep(0.2)
                except OSError:
                    continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/img.png"
    finally:
        stop.set()
        srv.close()
        t.join(timeout=5)


@pytest.mark.parametrize(
    "head,drip",
    [
        (b"", b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 400),  # the status line and headers
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"0" * 400),  # a chunk size
    ],
    ids=["headers", "chunk-size"],
)
def test_a_dripping_server_is_cut_off_at_the_total_deadline(
    monkeypatch: pytest.MonkeyPatch, head: bytes, drip: bytes
) -> None:
    """The deadline covers the whole fetch: before, each dripped byte renewed the socket
    timeout and a worker was held as long as the server kept dripping (60 s in the probe)."""
    score = load_score(monkeypatch, DIGITS_ALLOW_PRIVATE_URLS="1", DIGITS_URL_TIMEOUT_S="1")
    with dripping_server(head, drip) as url:
        started = time.monotonic()
        with pytest.raises(score.BadRequest, match="cannot fetch the URL"):
            score.fetch_url(url, "request")
        assert time.monotonic() - started < 10  # a bound, not a timing: the drip lasts 60 s


def _flat_png(side: int) -> bytes:
    """A white square with a dark bar: 16 megapixels in a few kilobytes of PNG."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (side, side), 255)
    ImageDraw.Draw(image).rectangle([side // 3, side // 4, side // 2, 3 * side // 4], fill=0)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def test_the_pixels_one_request_decodes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many images each under the per-image limit: the request's pixel budget refuses the
    one that would exceed it, naming it, before decoding it (before: all were decoded)."""
    import base64

    score = load_score(monkeypatch, DIGITS_DECODE_TIMEOUT_S="600")  # pixels alone, here
    png = _flat_png(4096)
    assert len(png) < 100_000
    body = {"data": [base64.b64encode(png).decode()] * 8}
    with pytest.raises(score.BadRequest, match=r"data\[2\]: .*pixels in all"):
        score.answer(body)


def test_decoding_time_per_request_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decode deadline is checked between images: past it, the next image is refused."""
    import base64

    score = load_score(monkeypatch, DIGITS_DECODE_TIMEOUT_S="0.000001")
    body = {"data": [base64.b64encode(PNG).decode()] * 3}
    with pytest.raises(score.BadRequest, match=r"data\[\d\]: decoding .* took more than"):
        score.answer(body)
