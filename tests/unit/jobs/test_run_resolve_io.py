"""amlocal.jobs.step_io.resolve_io: bound inputs and output declarations to values and paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs.step_io import resolve_io
from amlocal.workspace import Workspace

COMPONENT = {
    "inputs": {
        "n": {"type": "integer"},
        "flag": {"type": "boolean", "default": "true"},
        "maybe": {"type": "string", "optional": True},
        "data": {"type": "uri_folder"},
    },
    "outputs": {"model": {"type": "uri_folder"}, "report": {"type": "uri_file"}},
}


def _step(component: dict[str, Any] = COMPONENT) -> Any:
    return {"name": "train", "kind": "command", "component": component}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def test_literals_take_their_declared_type_and_defaults_apply(
    ws: Workspace, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "f.csv").write_text("a\n1\n")
    io = resolve_io(
        ws,
        "job1",
        _step(),
        {"n": {"literal": "3"}, "data": {"data": {"type": "uri_folder", "path": str(data)}}},
        {},
        base=tmp_path,
    )
    assert io.input_values["n"] == 3
    assert io.input_values["flag"] is True  # default "true" coerced to boolean
    assert io.input_values["maybe"] is None  # optional, no value
    assert io.input_values["data"] == str(data)  # ro_mount: the path itself
    assert io.input_meta["data"]["mode"] == "ro_mount"
    assert io.input_identity["data"]["digest"]  # content digest, for reuse
    assert "flag" not in io.input_meta  # defaults are not shown as given inputs


def test_outputs_go_to_azure_mls_default_location(ws: Workspace, tmp_path: Path) -> None:
    io = resolve_io(
        ws, "job1", _step(), {"n": {"literal": 1}, "data": _upstream(tmp_path)}, {}, base=tmp_path
    )
    model = io.outputs["model"]
    assert model["uri"] == "azureml://datastores/workspaceblobstore/paths/azureml/job1/model/"
    assert Path(model["local_path"]) == ws.datastore_dir() / "azureml" / "job1" / "model"
    assert model["mode"] == "rw_mount"
    assert io.outputs["report"]["type"] == "uri_file"
    assert io.output_identity["model"] == {"type": "uri_folder", "mode": None, "path": None}


def test_an_output_target_with_a_path_and_mode_wins(ws: Workspace, tmp_path: Path) -> None:
    targets = {
        "model": {
            "path": "azureml://datastores/workspaceblobstore/paths/custom/${{name}}/",
            "mode": "upload",
        }
    }
    io = resolve_io(
        ws,
        "job1",
        _step(),
        {"n": {"literal": 1}, "data": _upstream(tmp_path)},
        targets,
        base=tmp_path,
    )
    assert io.outputs["model"]["uri"].endswith("/paths/custom/job1/")
    assert io.outputs["model"]["mode"] == "upload"
    assert io.output_identity["model"]["mode"] == "upload"


def _upstream(tmp_path: Path) -> dict[str, Any]:
    up = tmp_path / "up"
    up.mkdir(exist_ok=True)
    return {"upstream": {"local_path": str(up), "uri": "azureml://x", "type": "uri_folder"}}


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ({"data": {"literal": "x"}}, "required input 'n' has no value"),
        ({"n": {"literal": 1}}, "required data input 'data' has no value"),
        ({"n": {"literal": "many"}, "data": {"literal": "x"}}, "not a valid integer"),
        (
            {"n": {"literal": 1}, "data": {"literal": "x"}, "zz": {"literal": 1}},
            "input 'zz' is not declared",
        ),
        (
            {"n": {"literal": 1}, "data": {"upstream": {"local_path": "/nonexistent/x"}}},
            "which the upstream step did not write",
        ),
        ({"n": {"literal": 1}, "data": {"data": {"path": "/nonexistent/y"}}}, "does not exist"),
    ],
)
def test_bad_bindings_name_the_step_and_input(
    ws: Workspace, tmp_path: Path, bound: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_io(ws, "job1", _step(), bound, {}, base=tmp_path)
