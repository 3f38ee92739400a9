"""A free loopback port for a server amlocal starts (an instance, a collector agent, the
tracking server). A module of its own so that any of them can use it without importing
another's module (collector <-> instances was an import cycle)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
