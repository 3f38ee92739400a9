"""Where an endpoint's local state lives under the workspace home."""

from __future__ import annotations

from pathlib import Path


def endpoint_dir(home: Path, endpoint: str) -> Path:
    return home / "endpoints" / endpoint


def keys_file(home: Path, endpoint: str) -> Path:
    return endpoint_dir(home, endpoint) / "keys.json"


def daemon_file(home: Path, endpoint: str) -> Path:
    return endpoint_dir(home, endpoint) / "daemon.json"


def daemon_log(home: Path, endpoint: str) -> Path:
    return endpoint_dir(home, endpoint) / "frontdoor.log"


def deployment_dir(home: Path, endpoint: str, deployment: str) -> Path:
    return endpoint_dir(home, endpoint) / "deployments" / deployment
