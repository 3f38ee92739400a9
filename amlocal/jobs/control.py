"""Pipeline control flow in the plan: `if_else`, `do_while` and `parallel_for` nodes parsed
from azure-ai-ml's `_to_dict()` (`control_step`), checked against the steps they name
(`check_control`), and the order the scheduler keeps (`waits`).

A control node owns the steps it names (an if_else's blocks, a loop's body): the scheduler
does not start an owned step itself; the node runs it (chosen, repeated or fanned out) and
reports its outcome. Whoever binds to an owned step's outputs waits for its owner. The
runtime side is in `amlocal.jobs.control_io` and the kinds `if_else`, `do_while`,
`parallel_for`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from amlocal.errors import InvalidInput
from amlocal.jobs import expressions as ex

if TYPE_CHECKING:
    from amlocal.jobs.types import Binding, Step

# AML's cap on a do_while's limits.max_iteration_count (azure-ai-ml DO_WHILE_MAX_ITERATION).
MAX_ITERATIONS = 1000
PRIMITIVE_TYPES = {"boolean", "integer", "number", "string"}
# The largest items JSON a parallel_for reads (a literal, an input or an upstream output).
MAX_ITEMS_BYTES = 1 << 20
_NODE = re.compile(r"^\$\{\{\s*parent\.jobs\.([\w-]+)\s*\}\}$")


def dependencies(step: Step) -> set[str]:
    """The steps whose outputs this one reads (a control node: its condition's or items'
    step)."""
    deps = {b["step_output"][0] for b in step["inputs"].values() if "step_output" in b}
    return deps | set((step.get("control") or {}).get("after") or [])


def order_of(waits: Mapping[str, set[str]]) -> list[str]:
    """A topological order of `waits` (name -> the names it waits for); a name on a cycle is
    left out, so a shorter order means a cycle."""
    deps = {n: set(d) for n, d in waits.items()}
    order: list[str] = []
    ready = [n for n in deps if not deps[n]]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in deps:
            if n in deps[m]:
                deps[m].discard(n)
                if not deps[m] and m not in order and m not in ready:
                    ready.append(m)
    return order


def owned(step: Step) -> list[str]:
    """The steps a control node runs: its blocks or its body."""
    ctl = step.get("control") or {}
    if "body" in ctl:
        return [ctl["body"]]
    return [*ctl.get("true_block", []), *ctl.get("false_block", [])]


def owners(steps: Mapping[str, Step]) -> dict[str, str]:
    """Owned step -> the control node that runs it."""
    return {o: name for name, s in steps.items() for o in owned(s) if o in steps}


def waits(steps: Mapping[str, Step]) -> dict[str, set[str]]:
    """What each step waits for before the scheduler starts it: the steps it binds to, with
    an owned step standing for its owner; a control node also waits for what its owned
    steps bind to (it binds them when it runs them)."""
    own = owners(steps)

    def lifted(deps: set[str], inside: str | None) -> set[str]:
        out = set()
        for d in deps & steps.keys():
            o = own.get(d)
            if o is None:
                out.add(d)
            elif o != inside:
                out.add(o)
        return out

    result: dict[str, set[str]] = {}
    for name, step in steps.items():
        mine = lifted(dependencies(step), own.get(name))
        for o in owned(step):
            if o in steps:
                mine |= lifted(dependencies(steps[o]), name)
        mine.discard(name)
        result[name] = mine
    return result


# -- parsing ------------------------------------------------------------------------------
def control_step(name: str, node: dict[str, Any], base: Path, *, where: str) -> Step:
    """A control-flow node as a plan step: no component, its keys parsed into `control`."""
    kind = node["type"]
    ctl: dict[str, Any] = {"after": []}
    if kind == "if_else":
        ctl["condition"] = _condition(node.get("condition"), ctl, f"{where}.condition")
        ctl["true_block"] = _blocks(node.get("true_block"), f"{where}.true_block")
        ctl["false_block"] = _blocks(node.get("false_block"), f"{where}.false_block")
        if not ctl["true_block"] and not ctl["false_block"]:
            raise InvalidInput(f"{where}: an if_else node needs a true_block or a false_block")
        both = set(ctl["true_block"]) & set(ctl["false_block"])
        if both:
            raise InvalidInput(
                f"{where}.false_block: {', '.join(sorted(both))} is also in true_block"
            )
    elif kind == "do_while":
        body = _body(node.get("body"), f"{where}.body")
        ctl["body"] = body
        ctl["condition"] = _loop_condition(node.get("condition"), body, f"{where}.condition")
        ctl["mapping"] = _mapping(node.get("mapping"), body, f"{where}.mapping")
        limit = (node.get("limits") or {}).get("max_iteration_count")
        if isinstance(limit, str) and ex.EXPR.search(limit):
            raise InvalidInput(
                f"{where}.limits.max_iteration_count: must be a number, not a binding ({limit})"
            )
        if limit is None:
            raise InvalidInput(f"{where}.limits.max_iteration_count: required for a do_while")
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_ITERATIONS
        ):
            raise InvalidInput(
                f"{where}.limits.max_iteration_count: {limit!r} is not an integer from 1 to "
                f"{MAX_ITERATIONS} (Azure ML's cap)"
            )
        ctl["max_iteration_count"] = limit
    else:  # parallel_for
        ctl["body"] = _body(node.get("body"), f"{where}.body")
        ctl["items"] = _items(node.get("items"), ctl, f"{where}.items")
        limit = node.get("max_concurrency")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidInput(f"{where}.max_concurrency: {limit!r} is not a positive integer")
        ctl["max_concurrency"] = limit
    step: Step = {
        "name": name,
        "kind": kind,
        "display_name": node.get("display_name") or name,
        "component_ref": None,
        "component": {},
        "inputs": {},
        "outputs": {},
        "environment_variables": {},
        "limits": {},
        "compute": None,
        "resources": None,
        "spec": node,
        "control": ctl,
    }
    return step


def _ref(value: Any, where: str) -> str:
    if isinstance(value, str) and (m := _NODE.match(value)):
        return m.group(1)
    raise InvalidInput(f"{where}: expected ${{{{parent.jobs.<step>}}}}, got {value!r}")


def _blocks(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_ref(v, where) for v in items]


def _body(value: Any, where: str) -> str:
    if value is None:
        raise InvalidInput(f"{where}: required")
    return _ref(value, where)


def _condition(value: Any, ctl: dict[str, Any], where: str) -> Binding:
    """An if_else condition: a boolean, a step's boolean control output, or a pipeline input."""
    if isinstance(value, bool):
        return {"literal": value}
    if isinstance(value, str):
        if m := ex.STEP_OUTPUT.match(value):
            ctl["after"].append(m.group(1))
            return {"step_output": [m.group(1), m.group(2)]}
        if m := ex.PARENT_INPUT.match(value):
            return {"parent_input": m.group(1)}
    raise InvalidInput(
        f"{where}: expected true, false, ${{{{parent.jobs.<step>.outputs.<output>}}}} or "
        f"${{{{parent.inputs.<input>}}}}, got {value!r}"
    )


def _port(value: Any, body: str, side: str, where: str) -> str:
    """`name`, or `${{parent.jobs.<body>.<side>.<name>}}` (azure-ai-ml keeps either)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: expected the name of one of {body}'s {side}, got {value!r}")
    m = re.match(r"^\$\{\{\s*parent\.jobs\.([\w-]+)\.(inputs|outputs)\.([\w.-]+)\s*\}\}$", value)
    if m is None:
        return value
    if m.group(1) != body or m.group(2) != side:
        raise InvalidInput(f"{where}: {value} is not one of the body '{body}''s {side}")
    return m.group(3)


def _loop_condition(value: Any, body: str, where: str) -> Any:
    """A do_while condition: the name of a body output (true: loop until the limit)."""
    if value is None or isinstance(value, bool):
        return value
    return _port(value, body, "outputs", where)


def _mapping(value: Any, body: str, where: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: expected a mapping of body outputs to body inputs")
    out: dict[str, list[str]] = {}
    for k, v in value.items():
        ins = v if isinstance(v, list) else [v]
        out[_port(k, body, "outputs", where)] = [_port(i, body, "inputs", where) for i in ins]
    return out


def _items(value: Any, ctl: dict[str, Any], where: str) -> Binding:
    """parallel_for items: a list (or dict) of dicts, that as a JSON string, or a binding."""
    if isinstance(value, str):
        if m := ex.PARENT_INPUT.match(value):
            return {"parent_input": m.group(1)}
        if m := ex.STEP_OUTPUT.match(value):
            ctl["after"].append(m.group(1))
            return {"step_output": [m.group(1), m.group(2)]}
        value = parse_items(value, where)
    return {"literal": check_items(value, where)}


def parse_items(text: str, where: str) -> Any:
    if len(text.encode()) > MAX_ITEMS_BYTES:
        raise InvalidInput(f"{where}: more than {MAX_ITEMS_BYTES} bytes of items")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{where}: not a JSON list of dicts ({exc})") from None


def check_items(value: Any, where: str) -> list[dict[str, Any]]:
    """Items as a list of dicts with the same keys (a dict's values, in order)."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: expected a non-empty list of dicts, got {value!r}")
    keys = None
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}[{i}]: expected a dict of body inputs, got {item!r}")
        if keys is not None and set(item) != keys:
            raise InvalidInput(
                f"{where}[{i}]: keys {sorted(item)} differ from item 0's {sorted(keys)} "
                "(every item sets the same inputs)"
            )
        keys = set(item)
    return value


# -- checks against the pipeline ------------------------------------------------------------
def check_control(steps: Mapping[str, Step], pipeline_inputs: set[str], where: str) -> None:
    """What a control node names exists and fits: blocks and bodies are steps of this
    pipeline, owned once; conditions are boolean; mapping and items name the body's ports;
    the order of the whole is a DAG."""
    seen: dict[str, str] = {}
    for name, step in steps.items():
        ctl = step.get("control")
        if ctl is None:
            continue
        at = f"{where}: jobs.{name}"
        keys = ("body",) if "body" in ctl else ("true_block", "false_block")
        for key in keys:
            for o in [ctl[key]] if key == "body" else ctl[key]:
                if o not in steps:
                    raise InvalidInput(f"{at}.{key}: no step named '{o}' in jobs")
                if "control" in steps[o]:
                    raise InvalidInput(f"{at}.{key}: '{o}' is itself a control-flow node")
                if o in seen:
                    raise InvalidInput(f"{at}.{key}: '{o}' is already run by '{seen[o]}'")
                seen[o] = name
        cond = ctl.get("condition")
        if isinstance(cond, dict):
            _check_condition(steps, cast("Binding", cond), pipeline_inputs, f"{at}.condition")
        if step["kind"] == "do_while":
            _check_loop(steps[ctl["body"]], ctl, at)
        if step["kind"] == "parallel_for":
            _check_items(steps, ctl, pipeline_inputs, at)
    order = order_of(waits(steps))
    if len(order) != len(steps):
        raise InvalidInput(f"{where}: the control-flow nodes and step bindings form a cycle")


def _declared(step: Step, side: str) -> dict[str, Any] | None:
    """A step's declared inputs or outputs; None when its component is resolved later."""
    component = step.get("component") or {}
    if not component:
        return None
    return dict(component.get(side) or {})


def _check_condition(
    steps: Mapping[str, Step], cond: Binding, pipeline_inputs: set[str], where: str
) -> None:
    if "parent_input" in cond:
        if cond["parent_input"] not in pipeline_inputs:
            raise InvalidInput(f"{where}: the pipeline has no input '{cond['parent_input']}'")
        return
    if "step_output" not in cond:
        return
    src, out = cond["step_output"]
    if src not in steps:
        raise InvalidInput(f"{where}: binds to step '{src}', which does not exist")
    outputs = _declared(steps[src], "outputs")
    if outputs is None:
        return
    if out not in outputs:
        raise InvalidInput(f"{where}: step '{src}' has no output '{out}'")
    if (outputs[out] or {}).get("type") != "boolean":
        raise InvalidInput(
            f"{where}: output '{out}' of step '{src}' is {outputs[out].get('type')}, "
            "not a boolean control output (is_control: true)"
        )


def _check_loop(body: Step, ctl: dict[str, Any], at: str) -> None:
    outputs, inputs = _declared(body, "outputs"), _declared(body, "inputs")
    if outputs is None or inputs is None:
        return
    cond = ctl.get("condition")
    if isinstance(cond, str):
        if cond not in outputs:
            raise InvalidInput(
                f"{at}.condition: the body '{body['name']}' has no output '{cond}' "
                f"(outputs: {', '.join(outputs) or 'none'})"
            )
        if (outputs[cond] or {}).get("type") not in PRIMITIVE_TYPES:
            raise InvalidInput(
                f"{at}.condition: output '{cond}' is {outputs[cond].get('type')}, not a "
                "control output (boolean, is_control: true)"
            )
    fed: dict[str, str] = {}
    for out, ins in ctl["mapping"].items():
        if out not in outputs:
            raise InvalidInput(f"{at}.mapping: the body '{body['name']}' has no output '{out}'")
        for i in ins:
            if i not in inputs:
                raise InvalidInput(
                    f"{at}.mapping.{out}: the body '{body['name']}' has no input '{i}' "
                    f"(inputs: {', '.join(inputs) or 'none'})"
                )
            data_out = (outputs[out] or {}).get("type") not in PRIMITIVE_TYPES
            if data_out and (inputs[i] or {}).get("type") in PRIMITIVE_TYPES:
                raise InvalidInput(
                    f"{at}.mapping.{out}: data output '{out}' cannot feed primitive input '{i}'"
                )
            if i in fed:
                raise InvalidInput(
                    f"{at}.mapping: input '{i}' is fed by both '{fed[i]}' and '{out}'"
                )
            fed[i] = out


def _check_items(
    steps: Mapping[str, Step], ctl: dict[str, Any], pipeline_inputs: set[str], at: str
) -> None:
    items = ctl["items"]
    if "parent_input" in items and items["parent_input"] not in pipeline_inputs:
        raise InvalidInput(f"{at}.items: the pipeline has no input '{items['parent_input']}'")
    if "step_output" in items and items["step_output"][0] not in steps:
        raise InvalidInput(
            f"{at}.items: binds to step '{items['step_output'][0]}', which does not exist"
        )
    inputs = _declared(steps[ctl["body"]], "inputs")
    if "literal" in items and inputs is not None:
        for key in items["literal"][0]:
            if key not in inputs:
                raise InvalidInput(
                    f"{at}.items: '{key}' is not an input of the body '{ctl['body']}' "
                    f"(inputs: {', '.join(inputs) or 'none'})"
                )


_SDK_PORT = re.compile(r"Cannot find ([\w.-]+) in do_while loop body (inputs|outputs)")


def name_loop_port(path: Path, message: str) -> str:
    """azure-ai-ml's "Cannot find x in do_while loop body inputs" with the YAML key that
    names x (`jobs.<node>.mapping` or `.condition`), which its message leaves out."""
    m = _SDK_PORT.search(message)
    if m is None:
        return message
    from amlocal import yamlsafe

    try:
        jobs = (yamlsafe.load_file(path) or {}).get("jobs") or {}
    except Exception:  # the message stands as it is
        return message
    port = m.group(1)
    for name, node in jobs.items():
        if not isinstance(node, dict) or node.get("type") != "do_while":
            continue
        mapping = node.get("mapping") or {}
        names = {str(k) for k in mapping} | {
            str(v) for vs in mapping.values() for v in (vs if isinstance(vs, list) else [vs])
        }
        if any(n == port or n.endswith(f".{port}}}}}") or n.endswith(f".{port}") for n in names):
            return f"{message.rstrip('.')} (jobs.{name}.mapping)"
        if str(node.get("condition")) == port:
            return f"{message.rstrip('.')} (jobs.{name}.condition)"
    return message
