"""`type: parallel_for` nodes: run the body once per item of `items`.

`items` is a list of dicts (a literal, a JSON string, or a pipeline input or upstream output
holding one); each item sets some of the body's inputs. Item `i` runs as a job of the body's
kind named `<node job>_<i>` (a child of the node), all of them through one scheduler graph
in a `RoundScope`, at most `max_concurrency` at once. The node's outputs aggregate the
items' outputs as azure-ai-ml types them: a data output becomes an `mltable` folder with one
subfolder per item index holding that item's output; a control output becomes a `string`,
the JSON object of item index to value.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs import plan as planlib
from amlocal.jobs.control import check_items, parse_items
from amlocal.jobs.control_io import binding_value, is_primitive, read_value
from amlocal.jobs.graph import RoundScope, run_graph
from amlocal.jobs.kinds.body import body_of
from amlocal.jobs.status import Status, succeeded
from amlocal.jobs.step_io import output_location

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult
    from amlocal.jobs.types import Binding, Outputs, Step


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run a parallel_for node; see amlocal.jobs.kinds for the contract."""
    job, ctl = call.job, call.step["control"]
    loop = body_of(call, "parallel_for")
    graph, scope, body = loop.graph, loop.scope, loop.step
    where = f"jobs.{call.step['name']}.items"
    items = _items(binding_value(ctl["items"], scope, graph.outputs, where), body, where, ctx.base)
    loop.start(ctx, job, items=len(items))
    rounds: dict[str, Step] = {}
    for i, item in enumerate(items):
        loop.child(ctx, job, i, item=i)
        rounds[str(i)] = {**body, "inputs": {**body["inputs"], **item}}
    done, outs = run_graph(
        ctx, RoundScope(job, scope), rounds, upstream=graph.outputs, limit=ctl["max_concurrency"]
    )
    if ctx.cancel.is_set() and ctx.user_canceled:
        status = Status.CANCELED
    else:
        status = Status.COMPLETED if all(succeeded(s) for s in done.values()) else Status.FAILED
    outputs = _aggregate(ctx, job, body, outs) if status == Status.COMPLETED else {}
    failed = sorted((n for n, s in done.items() if not succeeded(s)), key=int)
    return loop.finish(ctx, job, status, outputs, f"item(s) {', '.join(failed)} did not complete")


def _items(value: Any, body: Step, where: str, base: Path) -> list[dict[str, Binding]]:
    """Each item as bindings of the body's inputs: a literal, or data by path."""
    if isinstance(value, str):
        value = parse_items(value, where)
    declared = (body.get("component") or {}).get("inputs") or {}
    out: list[dict[str, Binding]] = []
    for i, item in enumerate(check_items(value, where)):
        bound: dict[str, Binding] = {}
        for key, v in item.items():
            if declared and key not in declared:
                raise InvalidInput(f"{where}[{i}]: '{key}' is not an input of '{body['name']}'")
            bound[key] = planlib.item_binding(v, base)
        out.append(bound)
    return out


def _aggregate(ctx: StepContext, job: str, body: Step, outs: dict[str, Outputs]) -> Outputs:
    """The node's outputs: per body output, every item's under its index."""
    declared = (body.get("component") or {}).get("outputs") or {}
    result: Outputs = {}
    for name, decl in declared.items():
        primitive = is_primitive(decl)
        local, uri = output_location(ctx.ws, job, name, {}, ctx.datastore)
        if primitive:
            values = {
                i: read_value(o[name], f"item {i} output '{name}'")
                for i, o in sorted(outs.items(), key=lambda kv: int(kv[0]))
                if name in o
            }
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(json.dumps(values))
            typ = "string"
        else:
            local.mkdir(parents=True, exist_ok=True)  # the node's own, new location
            for i, o in outs.items():
                if name in o and Path(o[name]["local_path"]).exists():
                    src = Path(o[name]["local_path"])
                    if src.is_dir():
                        shutil.copytree(src, local / i, dirs_exist_ok=True)
                    else:
                        (local / i).mkdir(exist_ok=True)
                        shutil.copy2(src, local / i / src.name)
            folders = "\n".join(f"  - folder: ./{i}" for i in sorted(outs, key=int))
            (local / "MLTable").write_text(f"paths:\n{folders}\n")
            typ = "mltable"
        result[name] = {"type": typ, "mode": "rw_mount", "local_path": str(local), "uri": uri}
    return result
