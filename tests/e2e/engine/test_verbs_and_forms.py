"""Verbs and forms az ml has, through the real CLI: `job update`, `component
update|archive|restore` and `show` defaulting to the latest, batch invoke files with literal
inputs as `{type, default}`, a schedule's `${{creation_context.trigger_time}}` and `${{name}}`,
and monitors that skip the signals amlocal cannot compute. Fixtures:
tests/fixtures/verbs-and-forms/ (verbs.sh is written for `az ml`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from cli_support import ENV_YML, Project

from tests.batch_support import wait_status

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "verbs-and-forms"


def _project(tmp_path: Path) -> Project:
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    p = Project(tmp_path)
    p.write("env.yml", ENV_YML)
    p.run("environment", "create", "-f", "env.yml")
    return p


def test_component_verbs_script_and_job_update(tmp_path: Path) -> None:
    project = _project(tmp_path)
    r = project.az_script("verbs.sh")
    assert r.returncode == 0, r.stdout + r.stderr

    def text(name: str) -> str:
        return (tmp_path / name).read_text().strip()

    assert text("latest-before.txt") == "2"  # show without --version: the latest
    assert text("latest-archived.txt") == "1"  # an archived version is never the latest
    assert text("listed.txt").split() == ["1"]
    assert sorted(text("listed-all.txt").split()) == ["1", "2"]
    assert text("latest-restored.txt") == "2"
    assert text("description.txt") == "the first echo"
    r = project.run("component", "update", "-n", "fid_verbs", "-v", "1", "--set", "command=ls",
                    check=False)  # fmt: skip
    assert r.returncode == 2 and "--set command" in r.stderr and "immutable" in r.stderr

    job, _ = project.create("job.yml")
    updated = project.json(
        "job", "update", "-n", job["name"],
        "--set", "display_name=renamed", "tags.team=ml", "properties.source=test",
    )  # fmt: skip
    assert updated["display_name"] == "renamed" and updated["tags"]["team"] == "ml"
    shown = project.json("job", "show", "-n", job["name"])
    assert shown["display_name"] == "renamed" and shown["properties"]["source"] == "test"
    assert shown["status"] == "Completed"
    r = project.run("job", "update", "-n", job["name"], "--set", "command=ls", check=False)
    assert r.returncode == 2 and "--set command" in r.stderr


def test_schedule_expressions_reach_the_fired_job(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("schedule", "create", "-f", "schedule-expressions.yml")
    job = project.json("schedule", "trigger", "-n", "fid-expressions")
    r = project.run("job", "stream", "-n", job["name"], timeout=300)
    assert project.json("job", "show", "-n", job["name"])["status"] == "Completed", r.stderr
    out = project.home / "datastores" / "workspaceblobstore" / "scheduled" / job["name"]
    when = (out / "when.txt").read_text().strip()
    assert re.fullmatch(r"when=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", when), when
    project.run("schedule", "disable", "-n", "fid-expressions")


def test_monitor_runs_what_it_computes_and_skips_the_rest(tmp_path: Path) -> None:
    project = _project(tmp_path)
    r = project.run("schedule", "create", "-f", "monitor-partial.yml")
    assert "monitoring_signals.attribution: type 'feature_attribution_drift'" in r.stderr
    assert "monitoring_signals.drift_no_reference: no reference_data" in r.stderr
    job = project.json("schedule", "trigger", "-n", "fid-monitor-partial")
    r = project.run("job", "stream", "-n", job["name"], check=False, timeout=300)
    log = r.stdout + r.stderr
    assert project.json("job", "show", "-n", job["name"])["status"] == "Completed", log
    assert "signal drift (data_drift): 200 production rows, 200 reference rows: BREACHED" in log
    assert "signal attribution: skipped offline" in log
    assert "signal drift_no_reference: skipped offline" in log
    project.run("schedule", "disable", "-n", "fid-monitor-partial")


def test_batch_invoke_file_literal_inputs_as_type_and_default(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run("compute", "create", "-n", "cpu-cluster", "--type", "amlcompute", "-o", "none")
    project.run("component", "create", "-f", "batch/component.yml", "-o", "none")
    project.run("batch-endpoint", "create", "-f", "batch/endpoint.yml", "-o", "none")
    project.run("batch-deployment", "create", "-f", "batch/deployment.yml", "--set-default",
                "-o", "none")  # fmt: skip
    job = project.json("batch-endpoint", "invoke", "-n", "fid-literals", "-f", "batch/inputs.yml")
    done = wait_status(project, job["name"], {"Completed", "Failed", "Canceled"})
    assert done["status"] == "Completed", done
    out = tmp_path / "out"
    project.run("job", "download", "-n", job["name"], "--all", "--download-path", str(out))
    assert next(out.rglob("got.txt")).read_text().split() == ["append", "3"]
    project.write("bad.yml", "inputs:\n  score_mode:\n    type: string\n")
    r = project.run("batch-endpoint", "invoke", "-n", "fid-literals", "-f", "bad.yml",
                    "--set", "inputs.data.path=batch/data", check=False)  # fmt: skip
    assert r.returncode == 2 and "score_mode" in r.stderr and "default" in r.stderr
