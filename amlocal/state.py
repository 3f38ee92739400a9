"""State files (daemon and studio pids, ports, workspace and registry records): written whole
or not at all, the one writer every module uses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any, *, pretty: bool = False) -> None:
    """Write a JSON state file so a crash leaves the old or the new one, never a torn or
    empty file: a private temporary file, fsync, rename, fsync of the folder. `pretty`: indented
    and sorted, for files people read (a workspace's or registry's record, config.json)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2 if pretty else None, sort_keys=pretty)
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
