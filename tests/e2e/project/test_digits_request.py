"""`make -s digits-request IMAGE=...`: a request on stdout, or a clear error (no traceback)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "digits-request", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_sample_image_becomes_a_request() -> None:
    r = _make("IMAGE=data/digits/7/0007.png")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert base64.b64decode(body["image"]) == (REPO / "data/digits/7/0007.png").read_bytes()


def test_missing_image_or_none_is_a_clear_error() -> None:
    r = _make("IMAGE=missing.png")
    assert r.returncode != 0 and r.stdout == ""
    assert "missing.png: no such file" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _make("IMAGE=data/digits")
    assert "is a folder" in r.stderr and "Traceback" not in r.stderr
    r = _make()
    assert r.returncode != 0 and "IMAGE=" in r.stderr and "Traceback" not in r.stderr
