"""Control values at run time: the primitive (`is_control`) outputs a step wrote, and the
conditions and items control-flow nodes read from them.

A command step writes a primitive output as Azure ML reads one: the value is the text of
the file at `${{outputs.<name>}}`. Reads are bounded; a value that is not of the declared
type fails the node that reads it, naming the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs.control import PRIMITIVE_TYPES

if TYPE_CHECKING:
    from amlocal.jobs.context import Scope
    from amlocal.jobs.types import Binding, Outputs, OutputValue, Upstream

    Port = Upstream | OutputValue | dict[str, Any]

MAX_VALUE_BYTES = 1 << 20
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


def is_primitive(out: Port) -> bool:
    return out.get("type") in PRIMITIVE_TYPES


def read_value(out: Port, where: str) -> Any:
    """The value of a primitive output, from the file the step wrote at its path."""
    path = Path(str(out.get("local_path")))
    if not path.is_file():
        raise InvalidInput(f"{where}: the step wrote no value at {path}")
    text = _bounded(path, where).strip()
    typ = out.get("type")
    try:
        if typ == "boolean":
            return to_bool(text, where)
        if typ == "integer":
            return int(text)
        if typ == "number":
            return float(text)
    except ValueError:
        raise InvalidInput(f"{where}: {text[:80]!r} is not a valid {typ}") from None
    return text


def to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidInput(f"{where}: {value!r} is not a boolean")


def binding_value(b: Binding, scope: Scope | None, outputs: dict[str, Outputs], where: str) -> Any:
    """A control node's literal, `${{parent.inputs.x}}` or `${{parent.jobs.s.outputs.o}}`."""
    if "literal" in b:
        return b["literal"]
    if "parent_input" in b:
        bound = scope.bind_input(where, b) if scope is not None else None
        if bound is None or "literal" not in bound:
            raise InvalidInput(f"{where}: the pipeline input '{b['parent_input']}' has no value")
        return bound["literal"]
    src, name = b["step_output"]
    out = (outputs.get(src) or {}).get(name)
    if out is None:
        raise InvalidInput(f"{where}: step '{src}' gave no output '{name}'")
    if is_primitive(out):
        return read_value(out, f"{where} (output '{name}' of '{src}')")
    return read_text(Path(out["local_path"]), where)


def read_text(path: Path, where: str) -> str:
    """A data output read as a value (parallel_for items from a uri_file)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        if len(files) != 1:
            raise InvalidInput(f"{where}: expected one file in {path}, found {len(files)}")
        path = files[0]
    return _bounded(path, where)


def _bounded(path: Path, where: str) -> str:
    """A file's text, refused past MAX_VALUE_BYTES (a step's output is untrusted)."""
    with path.open("rb") as f:
        raw = f.read(MAX_VALUE_BYTES + 1)
    if len(raw) > MAX_VALUE_BYTES:
        raise InvalidInput(f"{where}: {path} is over {MAX_VALUE_BYTES} bytes")
    return raw.decode(errors="replace")
