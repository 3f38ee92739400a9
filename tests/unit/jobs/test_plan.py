"""amlocal.jobs.plan: steps and bindings from azure-ai-ml's node dicts, dependency order,
and the files a job YAML pulls in (the plan cache key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs import plan
from amlocal.jobs.types import Step


def _node(**extra: object) -> dict[str, object]:
    return {
        "type": "command",
        "component": {
            "command": "python a.py ${{inputs.x}} ${{outputs.o}}",
            "inputs": {"x": {"type": "string"}},
            "outputs": {"o": {"type": "uri_folder"}},
        },
        **extra,
    }


def test_make_step_turns_each_input_into_one_kind_of_binding(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    node = _node(
        inputs={
            "a": "${{parent.inputs.lr}}",
            "b": "${{parent.jobs.prep.outputs.data}}",
            "c": "prefix-${{parent.inputs.lr}}",
            "d": {"type": "uri_folder", "path": "./d"},
            "e": 3,
            "f": {"path": "${{parent.jobs.prep.outputs.data}}", "mode": "download"},
        },
        outputs={"o": "${{parent.outputs.model}}", "p": {"type": "uri_file", "mode": "upload"}},
    )
    step = plan.make_step("train", node, tmp_path, where="p.yml: jobs.train")
    assert step["inputs"] == {
        "a": {"parent_input": "lr", "mode": None},
        "b": {"step_output": ["prep", "data"], "mode": None},
        "c": {"template": "prefix-${{parent.inputs.lr}}"},
        "d": {"data": {"type": "uri_folder", "path": str(tmp_path / "d"), "mode": None}},
        "e": {"literal": 3},
        "f": {"step_output": ["prep", "data"], "mode": "download"},
    }
    assert step["outputs"] == {
        "o": {"parent_output": "model"},
        "p": {"type": "uri_file", "path": None, "mode": "upload"},
    }
    assert plan.dependencies(step) == {"prep"}


def test_make_step_checks_code_command_and_type(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="code: .* does not exist"):
        plan.make_step("s", _node(component={"code": "./missing"}), tmp_path, where="w")
    bad = _node(component={"command": "python a.py ${{inputs.nope}}", "inputs": {}})
    with pytest.raises(InvalidInput, match="nope"):
        plan.make_step("s", bad, tmp_path, where="w")
    with pytest.raises(InvalidInput, match="step type 'spark' is not supported"):
        plan.make_step("s", {"type": "spark"}, tmp_path, where="w")
    ref = plan.make_step("s", {"component": "azureml:train:1"}, tmp_path, where="w")
    assert ref["component_ref"] == "azureml:train:1" and ref["component"] == {}


def test_topo_order_runs_producers_first_and_drops_a_cycle(tmp_path: Path) -> None:
    def step(*deps: str) -> Step:
        inputs = {d: f"${{{{parent.jobs.{d}.outputs.o}}}}" for d in deps}
        return plan.make_step("x", {"inputs": inputs}, tmp_path, where="w")

    steps = {"c": step("a", "b"), "b": step("a"), "a": step()}
    assert plan.topo_order(steps) == ["a", "b", "c"]
    cyclic = {"a": step("b"), "b": step("a"), "c": step()}
    assert plan.topo_order(cyclic) == ["c"]  # callers reject a short order as a cycle


def test_source_files_follow_components_and_conda_files(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "env.yml").write_text("name: e\n")
    (tmp_path / "components" / "c.yml").write_text("environment:\n  conda_file: ../env.yml\n")
    job = tmp_path / "job.yml"
    job.write_text(
        "jobs:\n  a:\n    component: ./components/c.yml\n"
        "  b:\n    component: azureml:registered:1\n"
    )
    found = plan.source_files(job)
    assert found == [
        job.resolve(),
        (tmp_path / "components" / "c.yml").resolve(),
        (tmp_path / "env.yml").resolve(),
    ]


@pytest.mark.subprocess
def test_source_files_are_memoized_by_content_without_pyyaml(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**__import__("os").environ, "AMLOCAL_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "c.yml").write_text("command: echo\n")
    (tmp_path / "d.yml").write_text("command: echo\n")
    job = tmp_path / "job.yml"
    job.write_text("jobs:\n  a:\n    component: ./c.yml\n")
    code = (
        "import sys; from pathlib import Path; from amlocal.jobs import plan;"
        f"print([p.name for p in plan.source_files(Path({str(job)!r}))], 'yaml' in sys.modules)"
    )

    def files() -> str:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert files() == "['job.yml', 'c.yml'] True"  # first sight: parsed
    assert files() == "['job.yml', 'c.yml'] False"  # same bytes: the memo, no PyYAML
    job.write_text("jobs:\n  a:\n    component: ./d.yml\n")
    assert files() == "['job.yml', 'd.yml'] True"  # edited: parsed anew


def test_a_damaged_refs_memo_is_parsed_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLOCAL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "c.yml").write_text("command: echo\n")
    job = tmp_path / "job.yml"
    job.write_text("jobs:\n  a:\n    component: ./c.yml\n")
    assert [p.name for p in plan.source_files(job)] == ["job.yml", "c.yml"]
    for memo in (tmp_path / "cache" / "refs").glob("*.json"):
        memo.write_text('{"../../etc": 1}')  # not a list of names
    assert [p.name for p in plan.source_files(job)] == ["job.yml", "c.yml"]
