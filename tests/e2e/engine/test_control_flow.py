"""Pipeline control flow through the CLI: `if_else`, `do_while`, `parallel_for` nodes and
`settings.on_init`/`on_finalize`, in the YAML shapes azure-ai-ml loads (its own
tests/test_configs/pipeline_jobs/control_flow/), with Azure ML's rules: the branch not taken
is Skipped, a loop's rounds feed each other through `mapping`, a parallel_for aggregates its
items' outputs by index, init runs first and finalize always runs last. Bad control-flow
YAML exits 2 naming its key. Fixtures: tests/fixtures/control-flow/."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from cli_support import Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "control-flow"


@pytest.fixture
def cf(project: Project) -> Project:
    shutil.copytree(FIXTURES, project.root, dirs_exist_ok=True)
    return project


def _text(job: dict[str, object], output: str = "out") -> str:
    outputs = job["outputs"]
    assert isinstance(outputs, dict)
    return (Path(outputs[output]["local_path"]) / "v.txt").read_text()


def test_if_else_runs_the_chosen_block_and_skips_the_other(cf: Project) -> None:
    job, r = cf.create("if_else.yml")
    assert job["status"] == "Completed"
    steps = cf.steps(job["name"])
    assert steps["check"]["status"] == "Completed"
    assert steps["high"]["status"] == "Completed" and _text(steps["high"]) == "high:0"
    # the false block and the step that reads only it are Skipped, not Failed
    assert steps["low"]["status"] == "Skipped"
    assert steps["after_low"]["status"] == "Skipped"
    assert steps["branch"]["condition"] is True
    assert steps["branch"]["chosen_block"] == "true_block"
    assert "low                      Skipped" in r.stderr

    job, _ = cf.create("if_else.yml", "--set", "inputs.n=0")
    assert job["status"] == "Completed"
    steps = cf.steps(job["name"])
    assert steps["high"]["status"] == "Skipped"
    assert steps["low"]["status"] == "Completed"
    assert _text(steps["after_low"]) == "low:0|after:0"
    shown = cf.json("job", "show", "-n", job["name"])
    assert shown["jobs"]["high"]["status"] == "Skipped"


def test_if_else_condition_literal_and_pipeline_input(cf: Project) -> None:
    text = (cf.root / "if_else.yml").read_text()
    cf.write(
        "literal.yml",
        text.replace("condition: ${{parent.jobs.check.outputs.flag}}", "condition: false"),
    )
    job, _ = cf.create("literal.yml")
    steps = cf.steps(job["name"])
    assert (steps["high"]["status"], steps["low"]["status"]) == ("Skipped", "Completed")

    cf.write(
        "by_input.yml",
        text.replace("  n: 1\n", "  n: 1\n  go: true\n").replace(
            "condition: ${{parent.jobs.check.outputs.flag}}", "condition: ${{parent.inputs.go}}"
        ),
    )
    job, _ = cf.create("by_input.yml", "--set", "inputs.go=false")
    steps = cf.steps(job["name"])
    assert (steps["high"]["status"], steps["low"]["status"]) == ("Skipped", "Completed")


def test_if_else_fails_on_a_condition_that_is_not_a_boolean(cf: Project) -> None:
    src = cf.root / "src" / "ctl.py"
    src.write_text(src.read_text().replace("str(a.n > 0)", '"maybe"'))
    job, r = cf.create("if_else.yml", check=False)
    assert r.returncode == 1 and job["status"] == "Failed"
    steps = cf.steps(job["name"])
    assert steps["branch"]["status"] == "Failed"
    assert "jobs.branch.condition" in steps["branch"]["error"]["message"]
    assert "'maybe' is not a boolean" in steps["branch"]["error"]["message"]
    assert steps["high"]["status"] == steps["low"]["status"] == "NotStarted"


def test_do_while_maps_outputs_into_the_next_round_until_the_condition_is_false(
    cf: Project,
) -> None:
    job, _ = cf.create("do_while.yml")
    assert job["status"] == "Completed"
    steps = cf.steps(job["name"])
    loop = steps["loop"]
    assert loop["status"] == "Completed" and loop["iterations"] == 3
    rounds = cf.json("job", "list", "--parent-job-name", loop["name"])
    assert sorted(r["display_name"] for r in rounds) == ["count_0", "count_1", "count_2"]
    assert all(r["status"] == "Completed" for r in rounds)
    # each round read the previous round's folder and its next_n: 3, 2, 1
    assert _text(loop) == "count:3|count:2|count:1"
    assert steps["count"]["outputs"]["out"] == loop["outputs"]["out"]  # the last round's
    assert steps["count"]["status"] == "Completed"
    assert _text(steps["report"]) == "count:3|count:2|count:1|report:0"


def test_do_while_stops_at_max_iteration_count(cf: Project) -> None:
    job, _ = cf.create("do_while.yml", "--set", "inputs.n=9")
    loop = cf.steps(job["name"])["loop"]
    assert loop["iterations"] == 5
    assert _text(loop) == "count:9|count:8|count:7|count:6|count:5"


def test_do_while_fails_on_a_condition_that_is_not_a_boolean(cf: Project) -> None:
    src = cf.root / "src" / "ctl.py"
    src.write_text(src.read_text().replace("str(a.n - 1 > 0)", '"maybe"'))
    job, r = cf.create("do_while.yml", check=False)
    assert r.returncode == 1
    steps = cf.steps(job["name"])
    assert steps["loop"]["status"] == steps["count"]["status"] == "Failed"
    assert "jobs.loop.condition" in steps["loop"]["error"]["message"]
    assert steps["report"]["status"] == "NotStarted"


def test_control_flow_inside_a_pipeline_component(cf: Project) -> None:
    job, _ = cf.create("nested.yml")
    assert job["status"] == "Completed"
    sub = cf.steps(job["name"])["sub"]
    nested = cf.steps(sub["name"])
    assert nested["loop"]["iterations"] == 2
    assert _text(cf.steps(job["name"])["after"]) == "count:2|count:1|after:0"


def test_az_ml_script_submits_control_flow_pipelines(cf: Project) -> None:
    r = cf.az_script("az_control_flow.sh")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Completed"] * 4


def test_parallel_for_runs_each_item_and_aggregates_by_index(cf: Project) -> None:
    job, _ = cf.create("parallel_for.yml")
    assert job["status"] == "Completed"
    steps = cf.steps(job["name"])
    each = steps["each"]
    items = cf.json("job", "list", "--parent-job-name", each["name"])
    assert sorted(i["display_name"] for i in items) == ["fan_0", "fan_1", "fan_2"]
    out = Path(each["outputs"]["out"]["local_path"])
    assert each["outputs"]["out"]["type"] == "mltable"
    assert {p.name for p in out.iterdir()} == {"0", "1", "2", "MLTable"}
    assert [(out / i / "v.txt").read_text() for i in "012"] == ["a:1", "b:2", "c:3"]
    assert _text(steps["gather"]) == "a:1,b:2,c:3|gather:0"
    # max_concurrency: 2 - never three items running at once
    spans = sorted((i["start_time"], i["end_time"]) for i in items)
    assert spans[2][0] >= min(spans[0][1], spans[1][1])


def test_parallel_for_fails_when_an_item_fails(cf: Project) -> None:
    text = (cf.root / "parallel_for.yml").read_text()
    cf.write(
        "fails.yml",
        text.replace('"n": 2}', '"n": 2, "fail": true}')
        .replace('"n": 1}', '"n": 1, "fail": false}')
        .replace('"n": 3}', '"n": 3, "fail": false}'),
    )
    job, r = cf.create("fails.yml", check=False)
    assert r.returncode == 1
    steps = cf.steps(job["name"])
    assert steps["each"]["status"] == "Failed"
    assert "item(s) 1 did not complete" in steps["each"]["error"]["message"]
    assert steps["gather"]["status"] == "NotStarted"


def test_on_init_runs_first_and_on_finalize_last(cf: Project) -> None:
    job, _ = cf.create("init_finalize.yml")
    steps = cf.steps(job["name"])
    assert all(s["status"] == "Completed" for s in steps.values())
    assert steps["setup"]["end_time"] <= steps["work"]["start_time"]
    assert steps["work"]["end_time"] <= steps["teardown"]["start_time"]

    job, r = cf.create("init_finalize.yml", "--set", "inputs.init_fail=true", check=False)
    assert r.returncode == 1 and job["status"] == "Failed"
    steps = cf.steps(job["name"])
    assert steps["setup"]["status"] == "Failed"
    assert steps["work"]["status"] == "NotStarted"  # nothing runs after a failed init
    assert steps["teardown"]["status"] == "Completed"  # finalize runs even so

    job, _ = cf.create(
        "init_finalize.yml",
        "--set",
        "inputs.fail=true",
        "--set",
        "settings.continue_on_step_failure=false",
        "--set",
        "settings.force_rerun=true",
        check=False,
    )
    steps = cf.steps(job["name"])
    assert steps["work"]["status"] == "Failed"
    assert steps["teardown"]["status"] == "Completed"
    assert steps["teardown"]["properties"].get("azureml.isreused") != "true"


def test_on_finalize_runs_after_a_cancel(cf: Project) -> None:
    job = json.loads(
        cf.run("job", "create", "-f", "init_finalize.yml", "--set", "inputs.work_sleep=60").stdout
    )
    name = job["name"]
    deadline = time.monotonic() + 60
    while cf.json("job", "show", "-n", f"{name}_work")["status"] != "Running":
        assert time.monotonic() < deadline, "work never started"
        time.sleep(0.2)
    cf.run("job", "cancel", "-n", name)
    while cf.json("job", "show", "-n", name)["status"] not in ("Canceled", "Failed", "Completed"):
        assert time.monotonic() < deadline, "the job did not end after cancel"
        time.sleep(0.2)
    steps = cf.steps(name)
    assert cf.json("job", "show", "-n", name)["status"] == "Canceled"
    assert steps["work"]["status"] == "Canceled"
    assert steps["teardown"]["status"] == "Completed"


@pytest.mark.parametrize(
    ("fixture", "old", "new", "expected"),
    [
        (
            "if_else.yml",
            "true_block: ${{parent.jobs.high}}",
            "true_block: ${{parent.jobs.nothere}}",
            "jobs.branch.true_block: no step named 'nothere'",
        ),
        (
            "if_else.yml",
            "condition: ${{parent.jobs.check.outputs.flag}}",
            "condition: ${{parent.jobs.high.outputs.out}}",
            "jobs.branch.condition: output 'out' of step 'high' is uri_folder, not a boolean",
        ),
        (
            "if_else.yml",
            "condition: ${{parent.jobs.check.outputs.flag}}",
            "condition: maybe",
            "jobs.branch.condition",
        ),
        (
            "do_while.yml",
            "next_n: n\n",
            "next_n: nope\n",
            "Cannot find nope in do_while loop body inputs (jobs.loop.mapping)",
        ),
        (
            "do_while.yml",
            "max_iteration_count: 5",
            "max_iteration_count: 1001",
            "jobs.loop.limits.max_iteration_count",
        ),
        ("do_while.yml", "condition: again", "condition: out", "jobs.loop.condition"),
        ("parallel_for.yml", '"n": 3}', '"m": 3}', "jobs.each.items"),
        ("init_finalize.yml", "on_init: setup", "on_init: nosuch", "settings.on_init"),
    ],
)
def test_control_flow_mistakes_exit_2_naming_the_key(
    cf: Project, fixture: str, old: str, new: str, expected: str
) -> None:
    text = (cf.root / fixture).read_text()
    assert old in text
    cf.write("bad.yml", text.replace(old, new))
    r = cf.run("job", "create", "-f", "bad.yml", "--stream", check=False)
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr
    assert cf.json("job", "list") == []  # nothing was submitted
