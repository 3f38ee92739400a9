"""Where an endpoint's local state lives under the workspace home: every path is built here,
from names checked against Azure's endpoint naming rule and kept inside the home."""

from __future__ import annotations

from pathlib import Path

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
