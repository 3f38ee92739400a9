"""Azure ML's `${{...}}` expressions and `$[[...]]` optional segments.

A step's `command` resolves in the step's own context (`${{inputs.x}}`, `${{outputs.y}}`);
its input/output bindings resolve in the parent's (`${{parent.inputs.x}}`,
`${{parent.jobs.s.outputs.y}}`). Rendering only replaces text: argument order, quoting and
everything outside the expressions are kept byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from amlocal.errors import InvalidInput

EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
PARENT_INPUT = re.compile(r"^\$\{\{\s*parent\.inputs\.([\w.-]+)\s*\}\}$")
PARENT_OUTPUT = re.compile(r"^\$\{\{\s*parent\.outputs\.([\w.-]+)\s*\}\}$")
STEP_OUTPUT = re.compile(r"^\$\{\{\s*parent\.jobs\.([\w-]+)\.outputs\.([\w.-]+)\s*\}\}$")
STEP_INPUT = re.compile(r"^\$\{\{\s*parent\.jobs\.([\w-]+)\.inputs\.([\w.-]+)\s*\}\}$")


def format_value(value: Any) -> str:
    """How a literal input appears on the command line."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def render(
    command: str,
    inputs: dict[str, Any],
    outputs: dict[str, str],
    *,
    extra: dict[str, dict[str, Any]] | None = None,
    where: str = "command",
) -> str:
    """Render a command in the step context.

    `inputs` maps every declared input to its value (a path string for data, a literal, or
    None when an optional input has no value); `outputs` maps declared outputs to paths.
    `extra` adds namespaces such as `search_space`. Unknown names are errors, reported
    before anything runs.
    """
    namespaces: dict[str, dict[str, Any]] = {"inputs": inputs, "outputs": outputs, **(extra or {})}

    def lookup(expr: str) -> tuple[bool, Any]:
        ns, _, key = expr.partition(".")
        if ns not in namespaces or not key:
            raise InvalidInput(f"{where}: unsupported expression '${{{{{expr}}}}}'")
        table = namespaces[ns]
        if key not in table:
            known = ", ".join(sorted(table)) or "none"
            raise InvalidInput(
                f"{where}: '${{{{{expr}}}}}' names no declared {ns[:-1] if ns.endswith('s') else ns}"
                f" '{key}' (declared: {known})"
            )
        return table[key] is not None, table[key]

    def substitute(text: str) -> str:
        return EXPR.sub(lambda m: format_value(lookup(m.group(1))[1]), text)

    def optional(m: re.Match[str]) -> str:
        segment = m.group(1)
        refs = EXPR.findall(segment)
        if not refs:
            raise InvalidInput(f"{where}: optional segment '$[[{segment}]]' contains no input")
        for ref in refs:
            present, _ = lookup(ref)
            if not present:
                return ""  # a missing optional input drops the whole segment
        return substitute(segment)

    rendered = OPTIONAL.sub(optional, command)
    for ref in EXPR.findall(rendered):
        present, _ = lookup(ref)
        if not present:
            raise InvalidInput(
                f"{where}: input '{ref.partition('.')[2]}' has no value and is not wrapped in "
                f"$[[...]] (optional inputs must be)"
            )
    return substitute(rendered)


def referenced_inputs(command: str) -> set[str]:
    return {r.partition(".")[2] for r in EXPR.findall(command) if r.startswith("inputs.")}


def substitute_path(path: str, values: dict[str, str]) -> str:
    """`${{name}}`, `${{output_name}}`, `${{default_datastore}}` in output paths."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise InvalidInput(f"output path '{path}': unsupported expression '${{{{{key}}}}}'")
        return values[key]

    return EXPR.sub(one, path)
