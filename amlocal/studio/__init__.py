"""The local studio: a small web app, served by amlocal itself on 127.0.0.1, that shows the
workspace as Azure ML studio does (jobs and pipeline graphs, endpoints, models, schedules,
monitors), read straight from the workspace's SQLite files: no MLflow server, no MLflow import.

This module is what the CLI imports to print links (`Web View:`, `job show --web`,
`make monitor`): it must stay light. The server is `amlocal.studio.server`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from amlocal.ports import from_env, recorded

HOST = "127.0.0.1"
# Tried first when no --port is given (a free port otherwise), so a link printed before the
# studio starts usually works once it does; AMLOCAL_STUDIO_PORT changes it.
DEFAULT_PORT = 8765
STATE_FILE = "studio.json"  # {"pid", "port"} of the running studio, under the workspace home


def preferred_port() -> int:
    return from_env("AMLOCAL_STUDIO_PORT", DEFAULT_PORT)


def running_port(home: Path) -> int | None:
    """The port of this workspace's running studio, from its state file (None if none runs)."""
    return recorded(home / STATE_FILE)


def base_url(home: Path) -> str:
    return f"http://{HOST}:{running_port(home) or preferred_port()}"


def url(home: Path, kind: str, name: str = "") -> str:
    """A studio page's stable address: `/jobs/<name>`, `/endpoints/<name>`, ..."""
    return f"{base_url(home)}/{kind}" + (f"/{quote(name, safe='')}" if name else "")
