"""amlocal.jobs.kinds: every step kind the kind map names imports and has `run`, so a
module that moves is caught here rather than by the first job of that kind."""

from __future__ import annotations

import importlib

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs.kinds import KINDS, kind
from amlocal.jobs.plan import STEP_KINDS


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_imports_and_has_run(name: str) -> None:
    module = importlib.import_module(KINDS[name])
    assert callable(getattr(module, "run", None)), f"{KINDS[name]} has no run()"
    assert kind(name, "step") is module


def test_the_kind_map_covers_every_step_kind_a_plan_accepts() -> None:
    assert set(KINDS) == STEP_KINDS


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="step 'x': type 'spark' is not supported"):
        kind("spark", "x")
