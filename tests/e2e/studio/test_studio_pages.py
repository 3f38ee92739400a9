"""The studio in a real browser: a pipeline's graph after a failed and a reused step, a
running job's graph changing without a reload, a schedule's next firing, 404 pages."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from cli_support import ENV_YML, Project, component

STEP_PY = """\
import argparse, pathlib, mlflow
p = argparse.ArgumentParser(); p.add_argument("--out"); p.add_argument("--value")
a = p.parse_args()
pathlib.Path(a.out, "v.txt").write_text(a.value)
mlflow.log_metric("length", len(a.value))
print("wrote", a.value)
"""

PIPE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: studio-test
display_name: studio graph
inputs:
  v: a
settings:
  default_compute: azureml:cpu-cluster
  continue_on_step_failure: true
jobs:
  first:
    component: ./step.yml
    inputs: {value: "${{parent.inputs.v}}"}
  nested:
    component: ./sub.yml
    inputs: {v: b}
  bad:
    type: command
    command: echo about to fail; exit 3
    environment: azureml:testenv@latest
    inputs: {up: "${{parent.jobs.first.outputs.out}}"}
    outputs:
      o: {type: uri_folder}
  after_bad:
    component: ./step.yml
    inputs: {value: "${{parent.jobs.bad.outputs.o}}"}
"""

SUB = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: sub
inputs:
  v: {type: string}
outputs:
  o: {type: uri_folder}
jobs:
  inner:
    component: ./step.yml
    inputs: {value: "${{parent.inputs.v}}"}
    outputs: {out: "${{parent.outputs.o}}"}
"""


def _project(tmp_path: Path) -> Project:
    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    p.run("environment", "create", "-f", "env.yml")
    p.write("src/step.py", STEP_PY)
    p.write(
        "step.yml",
        component(
            "step",
            "python step.py --out ${{outputs.out}} --value ${{inputs.value}}",
            inputs="value: {type: string}\n",
            outputs="out: {type: uri_folder}\n",
        ),
    )
    p.write("sub.yml", SUB)
    p.write("pipe.yml", PIPE)
    return p


def _states(page: Any) -> dict[str, tuple[str, str]]:
    return page.eval_on_selector_all(
        "svg#graph g.node",
        "els => Object.fromEntries(els.map(e => [e.dataset.id, [e.dataset.status, e.dataset.reused]]))",
    )


def test_pipeline_graph_after_a_failed_and_a_reused_step(
    tmp_path: Path, page: Any, studio_for: Any
) -> None:
    p = _project(tmp_path)
    p.create("pipe.yml", check=False)  # first run: first and inner complete, bad fails
    job, _ = p.create("pipe.yml", check=False)  # again: first and inner reused
    studio = studio_for(p.env, p.root)
    page.goto(f"{studio.url}/jobs/{job['name']}")
    page.wait_for_selector("svg#graph g.node[data-id=after_bad]")
    assert _states(page) == {
        "first": ["Completed", "true"],
        "nested": ["Completed", "false"],
        "bad": ["Failed", "false"],
        "after_bad": ["NotStarted", "false"],
    }
    # Colour by status, reuse drawn as a dashed border.
    fill = page.eval_on_selector("g.node[data-id=bad] rect", "e => getComputedStyle(e).fill")
    assert fill == "rgb(214, 69, 69)"
    dash = page.eval_on_selector(
        "g.node[data-id=first] rect", "e => getComputedStyle(e).strokeDasharray"
    )
    assert dash not in ("", "none")
    # The nested pipeline expands into its own step, reused too.
    page.click("g.node[data-id=nested]")
    page.wait_for_selector("g.node[data-id='nested/inner']")
    assert _states(page)["nested/inner"] == ["Completed", "true"]
    # A click shows the step's inputs, log tail and MLflow run.
    page.click("g.node[data-id=bad]")
    page.wait_for_selector("#detail-log")
    assert "about to fail" in page.inner_text("#detail-log")
    assert "azureml://datastores/workspaceblobstore" in page.inner_text("#detail")
    assert "/#/experiments/" in (page.get_attribute("#detail a[href*='/runs/']", "href") or "")
    page.click("g.node[data-id=first]")
    page.wait_for_function(
        "document.querySelector('#detail-name')?.textContent.startsWith('first')"
    )
    assert "length" in page.inner_text("#detail-metrics")
    assert "wrote a" in page.inner_text("#detail-log")  # the reused job's own log
    # The jobs list, filtered by status.
    page.goto(f"{studio.url}/jobs?status=Failed&type=pipeline")
    assert page.locator("table.jobs tbody tr").count() == 2
    # Unknown and hostile names are 404 pages.
    for bad in ("no_such_job", "..%2F..%2Fetc%2Fpasswd"):
        resp = page.goto(f"{studio.url}/jobs/{bad}")
        assert resp is not None and resp.status == 404
        assert "was not found" in page.inner_text("main")
    resp = page.goto(f"{studio.url}/endpoints/nope-endpoint")
    assert resp is not None and resp.status == 404


WAIT_PIPE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: studio-live
settings:
  default_compute: azureml:cpu-cluster
jobs:
  gate:
    type: command
    command: while [ ! -f {go} ]; do sleep 0.1; done; echo opened
    environment: azureml:testenv@latest
"""


def test_running_job_graph_changes_without_a_reload(
    tmp_path: Path, page: Any, studio_for: Any
) -> None:
    p = _project(tmp_path)
    go = tmp_path / "go"
    p.write("wait.yml", WAIT_PIPE.format(go=go))
    job = p.json("job", "create", "-f", "wait.yml")  # returns at once; a runner runs it
    studio = studio_for(p.env, p.root)
    try:
        page.goto(f"{studio.url}/jobs/{job['name']}")
        page.wait_for_selector("g.node[data-id=gate][data-status=Running]", timeout=60_000)
        page.evaluate("window.__sameDocument = true")
        go.touch()
        page.wait_for_selector("g.node[data-id=gate][data-status=Completed]", timeout=60_000)
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
        page.wait_for_function("document.querySelector('svg#graph').dataset.live === 'false'")
    finally:
        go.touch()
        deadline = time.monotonic() + 60
        while p.json("job", "show", "-n", job["name"])["status"] not in ("Completed", "Failed"):
            assert time.monotonic() < deadline
            time.sleep(0.5)


SCHEDULE = """\
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: nightly
trigger:
  type: cron
  expression: "17 3 * * *"
  time_zone: UTC
create_job: ./pipe.yml
"""


def test_schedule_shows_its_next_firing(tmp_path: Path, page: Any, studio_for: Any) -> None:
    import json
    import os
    import signal

    p = _project(tmp_path)
    p.write("s.yml", SCHEDULE)
    p.run("schedule", "create", "-f", "s.yml")
    try:
        studio = studio_for(p.env, p.root)
        page.goto(f"{studio.url}/schedules/nightly")
        firings = page.locator("#next-firings li.firing").all_inner_texts()
        now = dt.datetime.now(dt.UTC)
        first = now.replace(hour=3, minute=17, second=0, microsecond=0)
        if first <= now:
            first += dt.timedelta(days=1)
        assert len(firings) == 5
        assert firings[0] == first.strftime("%Y-%m-%d %H:%M:%S UTC")
        assert firings[1] == (first + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
        resp = page.goto(f"{studio.url}/schedules/other")
        assert resp is not None and resp.status == 404
    finally:
        p.run("schedule", "disable", "-n", "nightly")
        try:
            pid = json.loads((p.home / "schedules" / "daemon.json").read_text())["pid"]
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            pass
