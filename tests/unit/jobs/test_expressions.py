"""`${{...}}` substitution and `$[[...]]` optional segments (pure functions)."""

from __future__ import annotations

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs.expressions import render, substitute_path


def test_inputs_and_outputs_substituted_in_place() -> None:
    cmd = "python t.py --a ${{inputs.a}} --out ${{ outputs.o }} --b=${{inputs.b}}"
    assert render(cmd, {"a": 3, "b": "x y"}, {"o": "/tmp/o"}) == (
        "python t.py --a 3 --out /tmp/o --b=x y"
    )


def test_optional_segment_kept_with_value_and_quoting_preserved() -> None:
    cmd = "python t.py $[[--opt '${{inputs.opt}}']] --n ${{inputs.n}}"
    assert render(cmd, {"opt": "a b", "n": 1}, {}) == "python t.py --opt 'a b' --n 1"


def test_optional_segment_dropped_without_value_and_order_kept() -> None:
    cmd = "run $[[--first ${{inputs.a}}]] --mid $[[--last ${{inputs.b}} --also ${{inputs.c}}]]"
    assert render(cmd, {"a": None, "b": 2, "c": None}, {}) == "run  --mid "
    assert render(cmd, {"a": 1, "b": 2, "c": 3}, {}) == "run --first 1 --mid --last 2 --also 3"


def test_booleans_and_numbers_render_like_azure() -> None:
    assert (
        render("${{inputs.f}} ${{inputs.x}} ${{inputs.y}}", {"f": True, "x": 0.3, "y": 7}, {})
        == "True 0.3 7"
    )


def test_unknown_input_is_reported_with_declared_names() -> None:
    with pytest.raises(InvalidInput, match=r"names no declared input 'nope' \(declared: a\)"):
        render("echo ${{inputs.nope}}", {"a": 1}, {})


def test_missing_required_value_outside_optional_segment_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="must be"):
        render("echo ${{inputs.a}}", {"a": None}, {})


def test_unsupported_namespace_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="unsupported expression"):
        render("echo ${{parent.inputs.a}}", {"a": 1}, {})


def test_output_path_expressions() -> None:
    path = "azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}"
    assert substitute_path(
        path, {"default_datastore": "ds", "name": "job1", "output_name": "o"}
    ) == ("azureml://datastores/ds/paths/job1/o")
