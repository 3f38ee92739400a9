"""Where a job may write, checked at submission: an output's `path` must be a datastore path
that stays in its datastore, and the experiment's MLflow artifact folder must stay in the
workspace. Azure ML writes outputs to datastores only, never on the submitting machine, so a
local, absolute, `file://` or `..` path is refused with exit 2 and its key named before any
record is written; `run.output_location` applies the same rule again at run time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from amlocal.assets.data import output_path
from amlocal.errors import InvalidInput
from amlocal.jobs import expressions as ex
from amlocal.workspace import DEFAULT_DATASTORE

if TYPE_CHECKING:
    from amlocal.jobs.types import Plan
    from amlocal.workspace import Workspace


def datastore_name(value: Any) -> str:
    """The datastore of `settings.default_datastore` (`azureml:name` or a resource id)."""
    if not value:
        return DEFAULT_DATASTORE
    v = str(value).removeprefix("azureml:")
    return v.split("/")[-1] or DEFAULT_DATASTORE


def check(ws: Workspace, plan: Plan, datastore: str) -> None:
    """Refuse the plan if anything it would write leaves the workspace."""
    try:
        ws.under("mlartifacts", plan["experiment_name"])
    except InvalidInput as exc:
        raise InvalidInput(f"{plan['source']}: experiment_name: {exc}") from None
    for where, out_name, path in _declared(plan, ""):
        known = {"name": "job", "output_name": out_name, "default_datastore": datastore}
        uri = ex.EXPR.sub(lambda m: known.get(m.group(1), m.group(0)), path)  # noqa: B023
        if ex.EXPR.search(uri) is None:  # a binding such as ${{parent.outputs.x}} is not a path
            output_path(ws, uri, f"{plan['source']}: {where}outputs.{out_name}.path")


def _declared(node: Any, where: str) -> Iterator[tuple[str, str, str]]:
    """(where, output name, path) of every output with a `path`, at any depth of the plan
    (pipeline outputs, steps, nested pipeline components' jobs, sweep trials); `where` reads
    as the YAML key (`jobs.<step>`), the plan's own wrappers left out."""
    if isinstance(node, list):
        for item in node:
            yield from _declared(item, where)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "outputs" and isinstance(value, dict):
            for out_name, decl in value.items():
                if isinstance(decl, dict) and isinstance(decl.get("path"), str):
                    yield where, str(out_name), decl["path"]
        elif key in ("steps", "jobs") and isinstance(value, dict):
            for step, sub in value.items():
                yield from _declared(sub, f"{where}jobs.{step}.")
        else:
            yield from _declared(value, where)
