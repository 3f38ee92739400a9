"""Scoring script of the digits endpoint: an image (base64 or URL) in, its digit out.

Requests (JSON):
- `{"image": "<base64 PNG/JPEG/BMP/GIF/WebP>"}` (a `data:image/...;base64,` prefix is fine)
- `{"url": "https://..."}` (http or https on a public address, size-limited, all fetches of
  a request within DIGITS_URL_TIMEOUT_S; `file://` only under DIGITS_FILE_ROOT when set)
- a JSON list of such objects, for several images at once
- `{"data": [<base64 string or object as above>, ...]}`: the `data` convention of the other
  endpoints, answered with just the labels (`[7, 3]`): what the blue/green smoke test checks.

Responses: `{"label": 7, "probabilities": {"0": 0.001, ..., "9": 0.002}}` per image (a list
for a list). Any image size, colour or polarity is reduced to the model's 8x8 scale by
digits_image.py, the same code prep used on the training images.

Errors are the client's, so they are 400s naming the problem (which image, what is wrong):
undecodable image, bad base64, oversized payload or image, unreachable URL. `@rawhttp` gives
run() the raw request, so even a body that is not JSON gets a 400 from here and never the
opaque 500 azmlinfsrv returns for exceptions (a managed endpoint passes the 400 on).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import stat
import threading
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse
from digits_image import ImageError, decode, features

logger = logging.getLogger(__name__)


def _limit(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


# Limits (override with environment variables on the deployment).
MAX_REQUEST_BYTES = int(_limit("DIGITS_MAX_REQUEST_BYTES", 8 * 1024 * 1024))
MAX_IMAGE_BYTES = int(_limit("DIGITS_MAX_IMAGE_BYTES", 2 * 1024 * 1024))
MAX_IMAGES = int(_limit("DIGITS_MAX_IMAGES", 64))
# The total time all URL fetches of one request may take (connect, redirects, body): keep it
# below the deployment's request_timeout_ms, so no fetch outlives the request it serves.
URL_TIMEOUT_S = _limit("DIGITS_URL_TIMEOUT_S", 5.0)
MAX_REDIRECTS = 5
# Decoding is bounded per request, not only per image: 64 images of 16 megapixels each fit in
# a 1.9 MB body (flat PNGs compress ~1000:1) and kept a worker busy 70 s after the caller's
# 408. The pixels all images of a request may decode to, and the time decoding may take
# (checked between images: one image is bounded by the pixel limits).
MAX_IMAGE_PIXELS = int(_limit("DIGITS_MAX_IMAGE_PIXELS", 4096 * 4096))
MAX_REQUEST_PIXELS = int(_limit("DIGITS_MAX_REQUEST_PIXELS", 2 * 4096 * 4096))
DECODE_TIMEOUT_S = _limit("DIGITS_DECODE_TIMEOUT_S", 3.0)
# file:// URLs are off unless DIGITS_FILE_ROOT names the one folder they may read (regular
# files only): a server must not read any file a caller names (/dev/zero, a FIFO, keys).
FILE_ROOT = os.environ.get("DIGITS_FILE_ROOT") or None
URL_SCHEMES = ("http", "https", "file") if FILE_ROOT else ("http", "https")
# Loopback, private, link-local and other non-public addresses are refused unless allowed:
# a caller must not reach services on the server's host or network through it.
ALLOW_PRIVATE_URLS = _flag("DIGITS_ALLOW_PRIVATE_URLS")

model: Any = None
classes: list[Any] = []


class BadRequest(ValueError):
    """A problem with the request; the message goes back to the caller with a 400."""


def find_mlflow_model(root: Path) -> Path:
    """The folder holding `MLmodel` under AZUREML_MODEL_DIR (at the root or one level down)."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLmodel file under {root}")
    return found[0]


def load_sklearn_model(model_path: Path) -> Any:
    """The sklearn flavour's cloudpickle, without importing mlflow (workers start faster)."""
    import cloudpickle
    import yaml

    flavor = yaml.safe_load((model_path / "MLmodel").read_text())["flavors"]["sklearn"]
    with open(model_path / flavor["pickled_model"], "rb") as f:
        return cloudpickle.load(f)


def init() -> None:
    global model, classes
    model_path = find_mlflow_model(Path(os.environ["AZUREML_MODEL_DIR"]))
    model = load_sklearn_model(model_path)
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    # Features come in p0..p63 order from digits_image; the names check adds nothing.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    logger.info("digits model from %s, classes %s", model_path, classes)


# -- getting image bytes --------------------------------------------------------------------
def decode_base64(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"{where}: 'image' must be a non-empty base64 string")
    text = text.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) * 3 // 4 > MAX_IMAGE_BYTES:
        raise BadRequest(f"{where}: image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: 'image' is not valid base64") from None


class Deadline:
    """The time left for a request's URL fetches (one budget shared by all its images)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


def fetch_url(url: Any, where: str, deadline: Deadline | None = None) -> bytes:
    """At most MAX_IMAGE_BYTES from an http(s) URL on a public address (every redirect
    re-checked) within the request's deadline, or a file under FILE_ROOT.

    Network failures of every kind get the same message, so answers tell nothing about
    which hosts or ports exist.
    """
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}: 'url' must be a non-empty string")
    scheme = _scheme(url, where)
    if scheme == "file":
        return _read_file_url(url, where)
    deadline = deadline or Deadline(URL_TIMEOUT_S)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, data = _get(url, deadline)
            if location is None:
                break
            url = urllib.parse.urljoin(url, location)
            if _scheme(url, where) == "file":
                raise BadRequest(f"{where}: a redirect to a file URL is not followed")
        else:
            raise _Unfetchable("too many redirects")
    except BadRequest:
        raise
    except (_Unfetchable, OSError, TimeoutError, ValueError, http.client.HTTPException):
        raise BadRequest(
            f"{where}: cannot fetch the URL (unreachable, not a public address, not answered "
            f"with 200 within {URL_TIMEOUT_S:g} s, or larger than {MAX_IMAGE_BYTES} bytes)"
        ) from None
    return data


class _Unfetchable(Exception):
    pass


def _scheme(url: str, where: str) -> str:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in URL_SCHEMES:
        hint = "" if FILE_ROOT or scheme != "file" else " (file URLs need DIGITS_FILE_ROOT)"
        raise BadRequest(
            f"{where}: URL scheme '{scheme}' is not one of {', '.join(URL_SCHEMES)}{hint}"
        )
    return scheme


def _public_address(host: str, port: int, deadline: Deadline) -> str:
    """The first address of `host`; all of them must be public unless private ones are allowed
    (checked before connecting, and the connection goes to the checked address)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    deadline.left()
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise _Unfetchable("no address")
    if not ALLOW_PRIVATE_URLS:
        for a in addresses:
            if not ipaddress.ip_address(a.split("%")[0]).is_global:
                raise _Unfetchable("not a public address")
    return addresses[0]


def _get(url: str, deadline: Deadline) -> tuple[int, str | None, bytes]:
    """One GET: (status, redirect location or None, body); the socket's timeout is the time
    left before every connect and read, so a slow sender cannot stretch the request."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host:
        raise _Unfetchable("no host")
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    address = _public_address(host, port, deadline)
    sock = socket.create_connection((address, port), timeout=deadline.left())
    # A socket timeout bounds each read, not the fetch: a server that drips its status line,
    # headers or chunk sizes a byte at a time stays under it for ever (it held a worker
    # 60 s). At the deadline this watchdog shuts the socket down, which ends any read.
    live = [sock]
    watchdog = threading.Timer(deadline.left(), _cut, args=(live,))
    watchdog.daemon = True
    watchdog.start()
    try:
        if https:
            context = ssl.create_default_context()
            sock = live[0] = context.wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, port, timeout=deadline.left())
        conn.sock = sock
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"Host": parts.netloc, "Connection": "close"})
        resp = conn.getresponse()
        if resp.status in (301, 302, 303, 307, 308):
            location = resp.getheader("Location")
            if not location:
                raise _Unfetchable("redirect without a location")
            return resp.status, location, b""
        if resp.status != 200:
            raise _Unfetchable(f"HTTP {resp.status}")
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > MAX_IMAGE_BYTES:
            raise _Unfetchable("too large")
        chunks, size = [], 0
        while True:
            sock.settimeout(deadline.left())
            chunk = resp.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise _Unfetchable("too large")
        deadline.left()  # a read the watchdog cut short is a timeout, not an empty image
        return 200, None, b"".join(chunks)
    finally:
        watchdog.cancel()
        sock.close()


def _cut(live: list[socket.socket]) -> None:
    try:
        live[0].shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the fetch ended first


def _read_file_url(url: str, where: str) -> bytes:
    """A regular file under FILE_ROOT, read to at most the limit + 1 byte. Opened without
    blocking (a FIFO with no writer must not hang the worker) and checked with fstat on the
    open descriptor (devices, FIFOs and /proc report size 0 or lie)."""
    assert FILE_ROOT is not None
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)).resolve()
    if not path.is_relative_to(Path(FILE_ROOT).resolve()):
        raise BadRequest(f"{where}: file URLs must be under DIGITS_FILE_ROOT")
    denied = BadRequest(f"{where}: cannot read {url}: not a readable regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise denied from None
    with os.fdopen(fd, "rb", buffering=0) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise denied
        data = f.read(MAX_IMAGE_BYTES + 1) or b""
    if len(data) > MAX_IMAGE_BYTES:
        raise BadRequest(f"{where}: {url} is larger than {MAX_IMAGE_BYTES} bytes")
    return data


def image_bytes(item: Any, where: str, deadline: Deadline | None = None) -> bytes:
    if isinstance(item, str):  # a bare base64 string (the `data` form)
        return decode_base64(item, where)
    if not isinstance(item, dict) or ("image" in item) == ("url" in item):
        raise BadRequest(f"{where}: expected an object with exactly one of 'image' or 'url'")
    if "image" in item:
        return decode_base64(item["image"], where)
    return fetch_url(item["url"], where, deadline)


# -- predicting -------------------------------------------------------------------------------
def predict(items: list[Any], where: str) -> list[dict[str, Any]]:
    if not items:
        raise BadRequest(f"{where}: no images")
    if len(items) > MAX_IMAGES:
        raise BadRequest(f"{where}: {len(items)} images; at most {MAX_IMAGES} per request")
    rows = []
    deadline = Deadline(URL_TIMEOUT_S)
    decoding = Deadline(DECODE_TIMEOUT_S)
    pixels = MAX_REQUEST_PIXELS
    for i, item in enumerate(items):
        at = f"{where}[{i}]" if len(items) > 1 or where != "request" else where
        data = image_bytes(item, at, deadline)
        try:
            decoding.left()
        except TimeoutError:
            raise BadRequest(
                f"{at}: decoding this request's images took more than {DECODE_TIMEOUT_S:g} s; "
                "send fewer or smaller images per request"
            ) from None
        try:
            image = decode(data, max_pixels=min(MAX_IMAGE_PIXELS, pixels))
            pixels -= image.width * image.height
            rows.append(features(image))
        except ImageError as exc:
            if pixels < MAX_IMAGE_PIXELS and "pixels are accepted" in str(exc):
                raise BadRequest(
                    f"{at}: {exc} (the images of one request may have {MAX_REQUEST_PIXELS} "
                    "pixels in all)"
                ) from None
            raise BadRequest(f"{at}: {exc}") from None
    proba = model.predict_proba(np.vstack(rows))
    out = []
    for p in proba:
        best = int(np.argmax(p))
        out.append(
            {
                "label": classes[best],
                "probabilities": {
                    str(c): round(float(v), 6) for c, v in zip(classes, p, strict=True)
                },
            }
        )
    return out


def answer(body: Any) -> Any:
    """Dispatch on the request's shape; raises BadRequest with a message for the caller."""
    if isinstance(body, list):
        return predict(body, "request")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object or a list of objects")
    if "data" in body:
        data = body["data"]
        if not isinstance(data, list):
            raise BadRequest("'data' must be a list of images")
        return [r["label"] for r in predict(data, "data")]
    return predict([body], "request")[0]


def _error(message: str, status: int = 400) -> AMLResponse:
    return AMLResponse({"message": message}, status, json_str=True)


@rawhttp
def run(request: Any) -> Any:
    if request.method != "POST":
        return _error("use POST with a JSON body", 405)
    length = request.content_length
    if length is not None and length > MAX_REQUEST_BYTES:
        return _error(f"payload of {length} bytes exceeds {MAX_REQUEST_BYTES} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_REQUEST_BYTES:
        return _error(f"payload of {len(raw)} bytes exceeds {MAX_REQUEST_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return _error(f"the body is not valid JSON ({exc})")
    except RecursionError:
        return _error("the body is nested too deeply")
    try:
        return AMLResponse(answer(body), 200, json_str=True)
    except BadRequest as exc:
        return _error(str(exc))


if __name__ == "__main__":  # local check: python score.py <model-dir> <image file>
    import sys

    os.environ["AZUREML_MODEL_DIR"] = sys.argv[1]
    init()
    print(json.dumps(answer({"image": base64.b64encode(Path(sys.argv[2]).read_bytes()).decode()})))
