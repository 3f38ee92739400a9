"""amlocal.jobs.control and control_io: control-flow nodes parsed and checked, who owns
which steps and what each waits for, and control values read from the files steps wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs import control, control_io, plan
from amlocal.jobs.types import Step

FLAG = {"flag": {"type": "boolean", "is_control": True}, "out": {"type": "uri_folder"}}


def _cmd(name: str, inputs: dict[str, object] | None = None) -> Step:
    node = {
        "type": "command",
        "component": {
            "command": "python a.py",
            "inputs": {"n": {"type": "integer"}, "up": {"type": "uri_folder", "optional": True}},
            "outputs": FLAG,
        },
        "inputs": inputs or {},
    }
    return plan.make_step(name, node, Path("/tmp"), where=f"jobs.{name}")


def _ctl(name: str, **node: object) -> Step:
    return plan.make_step(name, dict(node), Path("/tmp"), where=f"jobs.{name}")


def _if_else() -> dict[str, Step]:
    return {
        "check": _cmd("check"),
        "a": _cmd("a", {"up": "${{parent.jobs.prep.outputs.out}}"}),
        "b": _cmd("b"),
        "prep": _cmd("prep"),
        "after_b": _cmd("after_b", {"up": "${{parent.jobs.b.outputs.out}}"}),
        "branch": _ctl(
            "branch",
            type="if_else",
            condition="${{parent.jobs.check.outputs.flag}}",
            true_block="${{parent.jobs.a}}",
            false_block=["${{parent.jobs.b}}"],
        ),
    }


def test_owned_steps_wait_through_their_node() -> None:
    steps = _if_else()
    assert control.owners(steps) == {"a": "branch", "b": "branch"}
    waits = control.waits(steps)
    # the node waits for its condition and for what its blocks bind to
    assert waits["branch"] == {"check", "prep"}
    # a step reading a block waits for the block's node
    assert waits["after_b"] == {"branch"}
    control.check_control(steps, set(), "p.yml")


def test_check_control_refuses_what_azure_ml_cannot_run() -> None:
    steps = _if_else()
    steps["twice"] = _ctl("twice", type="if_else", condition=True, true_block="${{parent.jobs.a}}")
    with pytest.raises(InvalidInput, match="jobs.twice.true_block: 'a' is already run by 'branch'"):
        control.check_control(steps, set(), "p.yml")

    steps = _if_else()
    steps["check"] = _cmd("check", {"up": "${{parent.jobs.after_b.outputs.out}}"})
    with pytest.raises(InvalidInput, match="form a cycle"):
        control.check_control(steps, set(), "p.yml")

    steps = _if_else()
    steps["branch"]["control"]["condition"] = {"step_output": ["check", "out"]}
    with pytest.raises(InvalidInput, match="jobs.branch.condition: output 'out' of step 'check'"):
        control.check_control(steps, set(), "p.yml")


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"limits": {"max_iteration_count": 1001}}, "limits.max_iteration_count: 1001"),
        ({"limits": {"max_iteration_count": 0}}, "limits.max_iteration_count: 0"),
        ({"limits": {}}, "limits.max_iteration_count: required"),
        ({"limits": {"max_iteration_count": "${{parent.inputs.n}}"}}, "not a binding"),
        ({"condition": "${{parent.jobs.other.outputs.flag}}"}, "jobs.loop.condition"),
    ],
)
def test_do_while_keys_are_checked(node: dict[str, object], message: str) -> None:
    base = {
        "type": "do_while",
        "body": "${{parent.jobs.body}}",
        "condition": "flag",
        "limits": {"max_iteration_count": 3},
    }
    with pytest.raises(InvalidInput, match=message):
        _ctl("loop", **{**base, **node})


def test_do_while_mapping_names_the_body_ports() -> None:
    loop = _ctl(
        "loop",
        type="do_while",
        body="${{parent.jobs.body}}",
        condition="flag",
        mapping={"out": "up", "flag": ["n"]},
        limits={"max_iteration_count": 3},
    )
    assert loop["control"]["mapping"] == {"out": ["up"], "flag": ["n"]}
    control.check_control({"body": _cmd("body"), "loop": loop}, set(), "p.yml")
    loop["control"]["mapping"] = {"out": ["n"]}
    with pytest.raises(InvalidInput, match="data output 'out' cannot feed primitive input 'n'"):
        control.check_control({"body": _cmd("body"), "loop": loop}, set(), "p.yml")


def test_parallel_for_items() -> None:
    node = _ctl(
        "each", type="parallel_for", body="${{parent.jobs.body}}", items='[{"n": 1}, {"n": 2}]'
    )
    assert node["control"]["items"] == {"literal": [{"n": 1}, {"n": 2}]}
    with pytest.raises(InvalidInput, match=r"jobs.each.items\[1\]: keys"):
        _ctl("each", type="parallel_for", body="${{parent.jobs.b}}", items=[{"n": 1}, {"m": 2}])
    with pytest.raises(InvalidInput, match="jobs.each.items: not a JSON list"):
        _ctl("each", type="parallel_for", body="${{parent.jobs.b}}", items="[{")


def test_control_values_are_the_text_of_the_output_file(tmp_path: Path) -> None:
    (tmp_path / "flag").write_text("True\n")
    (tmp_path / "n").write_text("4")
    (tmp_path / "bad").write_text("maybe")
    assert control_io.read_value({"type": "boolean", "local_path": str(tmp_path / "flag")}, "x")
    assert control_io.read_value({"type": "integer", "local_path": str(tmp_path / "n")}, "x") == 4
    with pytest.raises(InvalidInput, match="x: 'maybe' is not a boolean"):
        control_io.read_value({"type": "boolean", "local_path": str(tmp_path / "bad")}, "x")
    with pytest.raises(InvalidInput, match="wrote no value"):
        control_io.read_value({"type": "boolean", "local_path": str(tmp_path / "none")}, "x")
