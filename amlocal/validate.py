"""`python -m amlocal.validate [PATH ...]`: prove offline that every Azure ML YAML would be
accepted by `az ml`, and that the files fit together.

Each YAML with an Azure ML `$schema` is, in order:
1. loaded by azure-ai-ml (the parser `az ml` runs), dispatching on `$schema`;
2. validated with the entity's own `_validate()` where it has one;
3. converted to the REST body `az ml` would send (`_to_rest_object()` and friends) and
   serialized to JSON, with local components and paths standing in for the ARM ids that
   `az ml` uploads and substitutes just before the request.
Then the cross-file checks in `amlocal.crossfile` run on all of them (component paths,
bindings and their types, deployment/endpoint names, traffic, environment pins, asset refs).

Every problem is printed as `file: key: message`. Exit code 2 when any error was found (as
`az ml` uses for invalid input), else 0. Files without an Azure ML `$schema` (conda specs,
configs) are skipped, as `az ml` never reads them directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amlocal.crossfile import cross_check
from amlocal.yamldocs import DEFAULT_DIRS, Doc, Problem, discover, read_docs

# Endpoints and deployments are ARM tracked resources: their REST body carries a location.
# Any valid region works for the offline conversion; `az ml` uses the workspace's.
LOCATION = "eastus"


# -- azure-ai-ml: load, validate, convert ----------------------------------------------------
def _error_json(message: str) -> Any:
    """The JSON object azure-ai-ml embeds in its validation messages, or None."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(message[start:])
    except ValueError:
        return None
    return obj


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, message) pairs from marshmallow's nested errors or a ValidationResult."""
    if isinstance(obj, dict):
        if isinstance(obj.get("errors"), list):  # {"result": "Failed", "errors": [...]}
            for err in obj["errors"]:
                yield str(err.get("path", prefix)), str(err.get("message", err))
            return
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list) and all(isinstance(x, str) for x in obj):
        yield prefix, "; ".join(obj)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _flatten(value, f"{prefix}[{i}]")
    else:
        yield prefix, str(obj)


def load_problems(path: Path, exc: BaseException) -> list[Problem]:
    """An azure-ai-ml load error as one Problem per key it names."""
    original = exc.__context__ or exc  # amlocal.loader re-raises `from None`: keep the cause
    message = str(getattr(original, "message", "") or original)
    parsed = _error_json(message)
    if parsed is not None:
        pairs = list(_flatten(parsed))
        if pairs:
            return [Problem(path, key, msg) for key, msg in pairs]
    first = next((ln.strip() for ln in message.splitlines() if ln.strip()), type(exc).__name__)
    first = first.replace(f"{path}: ", "")
    return [Problem(path, "", first)]


def _rest_default(value: Any) -> Any:
    """JSON for what `az ml` replaces before sending: local paths (uploaded as code/data
    assets) and component entities (registered, then referenced by ARM id)."""
    import os

    if isinstance(value, os.PathLike):
        return os.fspath(value)
    name = getattr(value, "name", None)
    if name is not None and hasattr(value, "_to_rest_object"):
        return f"azureml:{name}:{getattr(value, 'version', None) or '1'}"
    raise TypeError(f"{type(value).__name__} has no REST form")


def to_rest(kind: str, entity: Any) -> dict[str, Any]:
    """The REST body `az ml <kind> create` would send for this entity, as JSON-ready data."""
    if kind == "online-endpoint":
        rest = entity._to_rest_online_endpoint(LOCATION)
    elif kind == "batch-endpoint":
        rest = entity._to_rest_batch_endpoint(LOCATION)
    elif kind in ("online-deployment", "batch-deployment"):
        rest = entity._to_rest_object(LOCATION)
    else:
        rest = entity._to_rest_object()
    body = rest.as_dict() if hasattr(rest, "as_dict") else rest.serialize()
    return json.loads(json.dumps(body, default=_rest_default))


def check_with_azure_ai_ml(doc: Doc) -> list[Problem]:
    """Load, `_validate()` and REST-convert one file; problems name the file and key."""
    from amlocal import loader
    from amlocal.errors import InvalidInput

    try:
        entity = loader.load(doc.kind, doc.path)
    except InvalidInput as exc:
        return load_problems(doc.path, exc)
    validate = getattr(entity, "_validate", None)
    if validate is not None:
        try:
            result = validate()
        except NotImplementedError:  # MonitorSchedule has no validator; az ml skips it too
            result = None
        if result is not None and not result.passed:
            return [Problem(doc.path, str(k), str(v)) for k, v in result.error_messages.items()]
    try:
        to_rest(doc.kind, entity)
    except Exception as exc:  # any failure here is one `az ml` would hit before sending
        return [Problem(doc.path, "", f"cannot convert to the REST request: {exc}")]
    return []


def _mltable_problems(paths: list[Path], docs: list[Doc]) -> list[Problem]:
    """MLTable files under `paths`, and the MLTable folders the YAML files name."""
    from amlocal.assets import mltable

    found: dict[tuple[str, str, str], Problem] = {}
    for doc in docs:
        for file, key, msg in mltable.check_yaml(doc.path, doc.raw):
            found.setdefault((str(file), key, msg), Problem(file, key, msg))
    for mlt in mltable.find_files(paths):
        for file, key, msg in mltable.check_file(mlt):
            found.setdefault((str(file), key, msg), Problem(file, key, msg))
    return list(found.values())


# -- driver --------------------------------------------------------------------------------
def run(paths: list[Path], root: Path, verbose: bool = False) -> tuple[list[Problem], str]:
    """All problems in `paths` and the one-line summary."""
    files = discover(paths)
    docs, skipped, problems = read_docs(files)
    for doc in docs:
        found = check_with_azure_ai_ml(doc)
        problems.extend(found)
        if verbose:
            print(f"{'FAIL' if found else 'ok  '} {doc.display} ({doc.schema})")
    problems.extend(cross_check(docs, root))
    problems.extend(_mltable_problems(paths, docs))
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    summary = (
        f"validate: {len(files)} YAML files, {len(docs)} Azure ML ({len(skipped)} skipped: "
        f"no Azure ML $schema): {len(errors)} error(s), {len(warnings)} warning(s)"
    )
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amlocal.validate", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help=f"default: {' '.join(DEFAULT_DIRS)}")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per file")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    paths = args.paths or [root / d for d in DEFAULT_DIRS if (root / d).is_dir()]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"validate: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    from amlocal.loader import quiet_sdk_notices

    quiet_sdk_notices()
    problems, summary = run(paths, root, args.verbose)
    for problem in sorted(problems, key=lambda p: (p.severity != "error", str(p.path), p.key)):
        print(problem.render(root), file=sys.stderr if problem.severity == "error" else sys.stdout)
    print(summary)
    return 2 if any(p.severity == "error" for p in problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
