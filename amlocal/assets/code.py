"""Code snapshots: a component's or a deployment's code copied into the workspace once per
content, as Azure uploads it at create."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from amlocal.workspace import Workspace


def code_snapshot(ws: Workspace, code: Path, includes: Sequence[str] = ()) -> tuple[str, Path]:
    """Copy code (and its additional includes) into the workspace, as Azure uploads it at
    create, so later edits to the working tree never change a component or a deployment:
    (the snapshot's digest, its folder). Made once per content; concurrent creators each
    build their own partial folder and the first to finish wins."""
    from amlocal.snapshot import materialize, snapshot_digest

    digest = snapshot_digest(code, ws.store, includes)
    dest = ws.home / "snapshots" / digest[:32]
    if not dest.exists():
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        materialize(code, tmp, includes)
        try:
            tmp.rename(dest)
        except OSError:  # another process made the same snapshot first
            shutil.rmtree(tmp, ignore_errors=True)
    return digest, dest
