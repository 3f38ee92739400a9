"""Why a step reran is told against an earlier run of the same component: inline components,
which azure-ai-ml names all alike (`azureml_anonymous`), are told apart by their step."""

from __future__ import annotations

from pathlib import Path

from amlocal.jobs import reuse_why
from amlocal.store import Store


def _step(name: str, component: str, command: str) -> dict[str, object]:
    return {"name": name, "component": {"name": component, "command": command}}


def _note(key: str, step: dict[str, object], alpha: str) -> None:
    reuse_why.note(key, step["component"], None, [], "env", {"alpha": alpha}, {}, {})  # type: ignore[arg-type]


def test_an_anonymous_step_is_compared_with_its_own_earlier_runs_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    prep = _step("prep", reuse_why.ANONYMOUS, "python prep.py")
    _note("k-prep", prep, "1")
    reuse_why.remember(store, prep, "k-prep", "job1_prep")
    train = _step("train", reuse_why.ANONYMOUS, "python train.py")
    _note("k-train", train, "1")
    assert reuse_why.explain(store, train, "k-train") is None  # not compared with prep
    reuse_why.remember(store, train, "k-train", "job1_train")
    _note("k-train-2", train, "2")
    why = reuse_why.explain(store, train, "k-train-2")
    assert why == {"compared_to": "job1_train", "differences": ['input alpha: "1" -> "2"']}


def test_a_named_component_is_compared_across_steps(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    first = _step("a", "shared", "python x.py")
    _note("k-a", first, "1")
    reuse_why.remember(store, first, "k-a", "job1_a")
    second = _step("b", "shared", "python x.py")
    _note("k-b", second, "1")
    assert reuse_why.explain(store, second, "k-b") == {
        "compared_to": "job1_a",
        "differences": ["the earlier run's outputs are gone, or it did not complete"],
    }
