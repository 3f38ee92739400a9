"""Ports of the servers amlocal starts: a free loopback port (an instance, a collector agent,
the tracking server), a port from the environment, the port a running server recorded. A module of its own so that any of them can use it without importing
another's module (collector <-> instances was an import cycle)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def from_env(variable: str, default: int) -> int:
    """A port chosen by an environment variable, or `default` when unset or not a port."""
    raw = os.environ.get(variable, "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else default


def recorded(state_file: Path) -> int | None:
    """The port a running server recorded with its pid (`{"pid", "port"}`), None when the file
    is missing or damaged or its process is gone."""
    try:
        state = json.loads(state_file.read_text())
        pid, port = int(state["pid"]), int(state["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
