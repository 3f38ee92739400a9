"""The digits scoring script reads no file and reaches no host a caller names (issue 20,
items 1 and 6): file:// is off unless DIGITS_FILE_ROOT is set, and then only regular files
under it, read to at most the limit + 1 byte; URL fetches share one deadline, follow only
http(s) redirects, refuse non-public addresses unless allowed, and fail with one message."""

from __future__ import annotations

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
    for k in ("DIGITS_FILE_ROOT", "DIGITS_ALLOW_PRIVATE_URLS", "DIGITS_URL_TIMEOUT_S"):
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
