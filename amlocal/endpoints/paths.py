"""Where an endpoint's local state lives under the workspace home: every path is built here,
from names checked against Azure's endpoint naming rule and kept inside the home."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from amlocal import names


def endpoint_dir(home: Path, endpoint: str) -> Path:
    return names.under(home, "endpoints", names.endpoint(endpoint))


def keys_file(home: Path, endpoint: str) -> Path:
    return endpoint_dir(home, endpoint) / "keys.json"


def daemon_file(home: Path, endpoint: str) -> Path:
    return endpoint_dir(home, endpoint) / "daemon.json"


def daemon_log(home: Path, endpoint: str) -> Path:
    return endpoint_dir(home, endpoint) / "frontdoor.log"


def deployment_dir(home: Path, endpoint: str, deployment: str) -> Path:
    return names.under(endpoint_dir(home, endpoint), "deployments", names.deployment(deployment))


def write_state(path: Path, data: Any) -> None:
    """Write a JSON state file so a crash leaves the old or the new one, never a torn or
    empty file: a private temporary file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
