"""An `az ml` script written from Microsoft's registry docs' commands (fixtures of our own,
tests/fixtures/registry_docs/), run unchanged with `az() { shift; amlocal "$@"; }`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cli_support import Project
from online_support import kill_leftovers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "registry_docs"
BIN = Path(sys.executable).parent


def test_the_docs_registry_walkthrough_runs_unchanged(tmp_path: Path) -> None:
    work = tmp_path / "walkthrough"
    shutil.copytree(FIXTURES, work)
    project = Project(work)
    project.run("workspace", "create", "-n", "dev-ws", "-g", "rg-docs", "-o", "none")
    env = {
        **project.env,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        # what `az configure --defaults workspace=dev-ws group=rg-docs` sets
        "AZURE_DEFAULTS_WORKSPACE": "dev-ws",
        "AZURE_DEFAULTS_GROUP": "rg-docs",
    }
    script = 'az() { shift; amlocal "$@"; }; export -f az; ./walkthrough.sh docs-registry rg-docs'
    try:
        r = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        answer = json.loads(r.stdout.strip().splitlines()[-1])
        # the data is y = 2*x1 - 3*x2 + 1 exactly: [10, 2] -> 15, [0, 0] -> 1
        assert [round(v, 6) for v in answer] == [15.0, 1.0], answer
        shown = project.json(
            "model", "show", "-n", "docs-model", "-v", "1", "--registry-name", "docs-registry"
        )
        assert shown["properties"]["azureml.sharedFrom.workspace"] == "dev-ws"
        assert shown["properties"]["azureml.sharedFrom.jobName"]
        # the job, the workspace model and the endpoint are dev-ws's; the default sees none
        assert project.json("job", "list", "-w", "local") == []
        assert project.json("model", "list", "-w", "local") == []
        assert project.json("component", "list", "-w", "dev-ws") == []
    finally:
        project.run(
            "online-endpoint", "delete", "-n", "reg-ep-1234", "--yes", "-w", "dev-ws", check=False
        )
        assert kill_leftovers(project.home) == []
