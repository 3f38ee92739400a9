"""`job create --stream`'s live view: the last transitions before the job ends are shown."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from amlocal.commands import job as jobcmd
from amlocal.workspace import Workspace


def test_a_step_that_ends_just_before_its_pipeline_is_still_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer polls every 0.2 s; a step finishing within the last poll of its pipeline
    must still get its `Completed` line (CI logs read it), not only the final table."""
    ws = Workspace(tmp_path / ".amlocal")
    ws.store.put("job", "p", {"name": "p", "type": "pipeline", "status": "Completed"})
    child = {"name": "p_s", "step_name": "s", "status": "Completed", "properties": {}}
    ws.store.put("job", "p_s", child, parent="p")
    err = io.StringIO()  # not a terminal: one line per change
    monkeypatch.setattr("sys.stderr", err)
    done = threading.Event()
    done.set()  # the job ended before the viewer's next poll
    jobcmd._view(ws, "p", done)
    assert "[p] s: Completed" in err.getvalue(), err.getvalue()
