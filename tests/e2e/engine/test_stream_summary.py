"""Issue 31, item 4: the `--stream` step table says what each step decided (the line at the
left margin with its first detail, not a trailing indented `(info)` line), cuts long lines at
an 80-column terminal instead of wrapping them to column 0, and shows the steps a failure
kept from running as NotStarted (or Canceled) in the Failed pipeline, not "waiting"."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from cli_support import ENV_YML, Project

from amlocal.jobs import stream
from amlocal.workspace import Workspace

LONG = "challenger rmse 58.123 vs champion v2 55.001: challenger is worse " + "x" * 120
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings:
  continue_on_step_failure: false
  default_compute: azureml:cpu-cluster
jobs:
  decide:
    type: command
    command: >-
      echo "prep-ish noise" && echo "decide: promote=False" && echo "  - LONG"
      && echo "  - (info) r2: challenger 0.41 vs 0.45"
    environment: azureml:testenv@latest
    outputs:
      out: {type: uri_folder}
  boom:
    type: command
    command: 'echo "boom: about to fail" && exit 3'
    environment: azureml:testenv@latest
    inputs:
      upstream: ${{parent.jobs.decide.outputs.out}}
    outputs:
      out: {type: uri_folder}
  slow:
    type: command
    command: sleep 120
    environment: azureml:testenv@latest
  after:
    type: command
    command: echo never
    environment: azureml:testenv@latest
    inputs:
      upstream: ${{parent.jobs.boom.outputs.out}}
""".replace("LONG", LONG)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, dict]:
    p = Project(tmp_path_factory.mktemp("summary"))
    p.write("env.yml", ENV_YML)
    p.write("p.yml", PIPELINE)
    p.run("environment", "create", "-f", "env.yml")
    job, r = p.create("p.yml", check=False)
    assert job["status"] == "Failed", r.stderr
    return p, job


def test_rows_show_decisions_and_what_did_not_run(failed: tuple[Project, dict]) -> None:
    p, job = failed
    ws = Workspace(p.home)
    text = stream.render(ws, ws.store.get("job", job["name"]))
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "decide: promote=False; challenger rmse 58.123" in lines["decide"]
    assert "(info)" not in lines["decide"]
    assert "boom: about to fail" in lines["boom"] and "FAILED" in lines["boom"]
    assert lines["slow"].split()[1] == "canceled"  # running when boom failed: stopped
    assert lines["after"].split()[1] == "NotStarted"  # never started: not "waiting"
    assert "waiting" not in text


def test_an_80_column_terminal_gets_cut_lines_not_wrapped_ones(
    failed: tuple[Project, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, job = failed
    monkeypatch.setenv("COLUMNS", "80")  # rich reads the width as a terminal reports it
    monkeypatch.delenv("LINES", raising=False)
    out = _Terminal()
    view = stream.LiveView(Workspace(p.home), job["name"], out)
    view.tick()
    view.close()
    frame = ANSI.sub("", out.getvalue())
    lines = [line for line in frame.splitlines() if line.strip()]
    heads = [i for i, line in enumerate(lines) if line.startswith(job["name"])]
    assert heads, lines
    steps = lines[heads[-1] + 1 :]  # the last frame drawn
    assert len(steps) == 4, lines  # one line per step: nothing wrapped onto a line of its own
    assert all(line.startswith("  ") and len(line) <= 80 for line in steps), lines
    decide = next(line for line in steps if line.split()[0] == "decide")
    assert decide.endswith("…") and "promote=False" in decide
    assert Path(p.home).is_dir()
