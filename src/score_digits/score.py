"""Scoring script of the digits endpoint: an image (base64 or URL) in, its digit out.

Requests (JSON):
- `{"image": "<base64 PNG/JPEG/BMP/GIF/WebP>"}` (a `data:image/...;base64,` prefix is fine)
- `{"url": "https://..."}` (http, https or file; size-limited, with a timeout)
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
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse
from digits_image import ImageError, features_from_bytes

logger = logging.getLogger(__name__)


def _limit(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# Limits (override with environment variables on the deployment).
MAX_REQUEST_BYTES = int(_limit("DIGITS_MAX_REQUEST_BYTES", 8 * 1024 * 1024))
MAX_IMAGE_BYTES = int(_limit("DIGITS_MAX_IMAGE_BYTES", 2 * 1024 * 1024))
MAX_IMAGES = int(_limit("DIGITS_MAX_IMAGES", 64))
URL_TIMEOUT_S = _limit("DIGITS_URL_TIMEOUT_S", 5.0)
URL_SCHEMES = ("http", "https", "file")
# When set, file:// URLs must point inside this folder (a server should not read any file
# a caller names); unset, any readable file is allowed (local development).
FILE_ROOT = os.environ.get("DIGITS_FILE_ROOT")

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


def fetch_url(url: Any, where: str) -> bytes:
    """Download at most MAX_IMAGE_BYTES within URL_TIMEOUT_S."""
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}: 'url' must be a non-empty string")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in URL_SCHEMES:
        raise BadRequest(f"{where}: URL scheme '{scheme}' is not one of {', '.join(URL_SCHEMES)}")
    if scheme == "file":
        return _read_file_url(url, where)
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:  # noqa: S310
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_IMAGE_BYTES:
                raise BadRequest(f"{where}: {url} is {length} bytes; limit {MAX_IMAGE_BYTES}")
            data = resp.read(MAX_IMAGE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise BadRequest(f"{where}: fetching {url} returned HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadRequest(f"{where}: URL {url} is unreachable ({reason})") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise BadRequest(f"{where}: {url} is larger than {MAX_IMAGE_BYTES} bytes")
    return data


def _read_file_url(url: str, where: str) -> bytes:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)).resolve()
    if FILE_ROOT and not path.is_relative_to(Path(FILE_ROOT).resolve()):
        raise BadRequest(f"{where}: file URLs must be under {FILE_ROOT}")
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise BadRequest(f"{where}: {url} is larger than {MAX_IMAGE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"{where}: cannot read {url} ({exc.strerror or exc})") from None


def image_bytes(item: Any, where: str) -> bytes:
    if isinstance(item, str):  # a bare base64 string (the `data` form)
        return decode_base64(item, where)
    if not isinstance(item, dict) or ("image" in item) == ("url" in item):
        raise BadRequest(f"{where}: expected an object with exactly one of 'image' or 'url'")
    if "image" in item:
        return decode_base64(item["image"], where)
    return fetch_url(item["url"], where)


# -- predicting -------------------------------------------------------------------------------
def predict(items: list[Any], where: str) -> list[dict[str, Any]]:
    if not items:
        raise BadRequest(f"{where}: no images")
    if len(items) > MAX_IMAGES:
        raise BadRequest(f"{where}: {len(items)} images; at most {MAX_IMAGES} per request")
    rows = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]" if len(items) > 1 or where != "request" else where
        try:
            rows.append(features_from_bytes(image_bytes(item, at)))
        except ImageError as exc:
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
    try:
        return AMLResponse(answer(body), 200, json_str=True)
    except BadRequest as exc:
        return _error(str(exc))


if __name__ == "__main__":  # local check: python score.py <model-dir> <image file>
    import sys

    os.environ["AZUREML_MODEL_DIR"] = sys.argv[1]
    init()
    print(json.dumps(answer({"image": base64.b64encode(Path(sys.argv[2]).read_bytes()).decode()})))
