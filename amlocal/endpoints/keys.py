"""Endpoint keys: generated like Azure's, stored owner-only, compared in constant time.

`auth_mode: key` endpoints have a primary and a secondary key that never expire; either one
is accepted as `Authorization: Bearer <key>`. The same file holds the daemon's control
token, which only the CLI (same user) can read, and the instance token: the header only the
front door sends, without which an instance refuses a request (Azure's instances cannot be
reached except through the endpoint; local ports can, by any local user).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

from amlocal.state import write_json

KEY_NAMES = ("primaryKey", "secondaryKey")


def new_key() -> str:
    """32 URL-safe characters (192 bits), the length of an Azure endpoint key."""
    return secrets.token_urlsafe(24)


def write(path: Path, data: dict[str, str]) -> None:
    """Write atomically with mode 0600 inside a 0700 folder: keys never hit a readable file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_json(path, data)


def read(path: Path) -> dict[str, str]:
    keys: dict[str, str] = json.loads(path.read_text())
    return keys


def create(path: Path) -> dict[str, str]:
    data = {
        "primaryKey": new_key(),
        "secondaryKey": new_key(),
        "control": new_key(),
        "instance": new_key(),
    }
    write(path, data)
    return data


def with_instance_token(path: Path) -> dict[str, str]:
    """The keys, with an instance token added if the file predates it."""
    data = read(path)
    if not data.get("instance"):
        data["instance"] = new_key()
        write(path, data)
    return data


def regenerate(path: Path, key_type: str) -> dict[str, str]:
    data = read(path)
    data[f"{key_type}Key"] = new_key()
    write(path, data)
    return data


def bearer_ok(authorization: bytes | None, keys: tuple[bytes, ...]) -> bool:
    """True if the header is `Bearer <k>` for one of `keys`; every key is compared, in
    constant time, so timing reveals neither which key matched nor a common prefix."""
    if not authorization or not keys:
        return False
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    token = token.strip()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token, key)
    return ok
