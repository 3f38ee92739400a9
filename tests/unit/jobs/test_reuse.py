"""amlocal.jobs.reuse: the fingerprint and the reuse decision, on a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal.jobs import reuse
from amlocal.workspace import Workspace

COMPONENT = {"type": "command", "command": "python a.py ${{inputs.x}}", "inputs": {"x": {}}}


def _step(**component: Any) -> Any:
    return {"name": "s", "kind": "command", "component": {**COMPONENT, **component}}


def _key(**changes: Any) -> str:
    args: dict[str, Any] = {
        "component": COMPONENT,
        "code_digest": "c1",
        "environment_identity": "env1",
        "inputs": {"x": 1},
        "outputs": {"o": {"type": "uri_folder", "mode": None, "path": None}},
        "run_settings": {},
    }
    args.update(changes)
    return reuse.fingerprint(**args)


def test_fingerprint_changes_with_what_is_computed_only() -> None:
    base = _key()
    assert _key() == base
    # display text does not change what a component computes
    assert _key(component={**COMPONENT, "display_name": "other", "version": "9"}) == base
    for change in (
        {"component": {**COMPONENT, "command": "python b.py"}},
        {"code_digest": "c2"},
        {"environment_identity": "env2"},
        {"inputs": {"x": 2}},
        {"outputs": {"o": {"type": "uri_file", "mode": None, "path": None}}},
        {"run_settings": {"limits": {"timeout": 5}}},
    ):
        assert _key(**change) != base, change


def _completed(ws: Workspace, name: str, out: Path, **extra: Any) -> None:
    record = {"name": name, "status": "Completed", "outputs": {"o": {"local_path": str(out)}}}
    ws.store.put("job", name, {**record, **extra})


def test_reusable_hit_and_the_rules_that_refuse_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    out = tmp_path / "out"
    out.mkdir()
    _completed(ws, "first", out, properties={"mlflow.runId": "r1"}, command="python a.py")
    reuse.remember(ws.store, "k", "first")
    step = _step()

    hit = reuse.reusable(ws.store, step, "k", "second", force_rerun=False)
    assert hit is not None and hit["name"] == "first"
    fields = reuse.reused_fields(hit)
    assert fields["status"] == "Completed"
    assert fields["properties"] == {
        "azureml.isreused": "true",
        "azureml.reusedrunid": "first",
        "mlflow.runId": "r1",
    }
    assert fields["command"] == "python a.py"

    assert reuse.reusable(ws.store, step, "other-key", "second", force_rerun=False) is None
    assert reuse.reusable(ws.store, step, "k", "first", force_rerun=False) is None  # itself
    assert reuse.reusable(ws.store, step, "k", "second", force_rerun=True) is None
    nondeterministic = _step(is_deterministic=False)
    assert reuse.reusable(ws.store, nondeterministic, "k", "second", force_rerun=False) is None
    assert not reuse.enabled(nondeterministic, force_rerun=False)


def test_a_hit_whose_outputs_are_gone_or_that_failed_is_not_reused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    out = tmp_path / "out"
    out.mkdir()
    _completed(ws, "first", out)
    reuse.remember(ws.store, "k", "first")
    out.rmdir()
    assert reuse.lookup(ws.store, "k") is None

    out.mkdir()
    ws.store.put("job", "first", {"name": "first", "status": "Failed", "outputs": {}})
    assert reuse.lookup(ws.store, "k") is None


def test_reused_fields_of_a_non_command_hit_show_no_command(tmp_path: Path) -> None:
    fields = reuse.reused_fields({"name": "sweep1", "outputs": {}, "properties": {}})
    assert "command" not in fields
    assert "mlflow.runId" not in fields["properties"]  # type: ignore[operator]
