"""Reuse that explains itself: a step that reruns says, in `job show` (`rerun`) and in
`--stream`, which code file, input, environment or setting differs from the nearest earlier
run of its component. Fixtures: tests/fixtures/reuse-why/."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_support import Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reuse-why"


def test_a_rerun_names_the_code_file_and_input_that_changed(project: Project) -> None:
    shutil.copytree(FIXTURES, project.root, dirs_exist_ok=True)
    first, _ = project.create("pipeline.yml")
    again, _ = project.create("pipeline.yml")
    step = project.steps(again["name"])["scale"]
    assert step["properties"]["azureml.isreused"] == "true" and "rerun" not in step

    src = project.root / "src" / "scale.py"
    src.write_text(src.read_text() + "# tuned\n")
    job, r = project.create("pipeline.yml", "--set", "inputs.alpha=0.7")
    step = project.steps(job["name"])["scale"]
    assert step["properties"].get("azureml.isreused") != "true"
    assert step["rerun"]["compared_to"] == f"{first['name']}_scale"
    assert step["rerun"]["differences"] == ["code file scale.py changed", "input alpha: 0.5 -> 0.7"]
    assert "rerun: code file scale.py changed; input alpha: 0.5 -> 0.7" in r.stdout + r.stderr

    # the nearest earlier run is the one with the fewest differences: back to alpha 0.5
    job, _ = project.create("pipeline.yml", "--set", "inputs.alpha=0.9")
    step = project.steps(job["name"])["scale"]
    assert step["rerun"]["differences"] == ["input alpha: 0.7 -> 0.9"]
