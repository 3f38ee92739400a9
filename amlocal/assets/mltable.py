"""MLTable pre-flight: the checks Azure makes minutes into a job ("Not able to find MLTable
file", a path that matches nothing, an unknown transformation), made in a second by `make
validate` and `job validate`.

An `mltable` input's folder must hold a file named `MLTable`; that file is YAML whose
`paths:` entries (`file`, `folder` or `pattern`) must resolve, and whose `transformations:`
must be ones the MLTable runtime knows, with the parameters it takes. Source:
https://learn.microsoft.com/azure/machine-learning/reference-yaml-mltable. The `mltable`
package itself (and its data-prep engine) is not needed: the checks are its documented
schema, and a delimited file is read once with pandas to prove it parses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20  # an MLTable file is a few lines of YAML

# transformation -> the parameters it takes (reference-yaml-mltable, "Transformations")
_READERS: dict[str, set[str]] = {
    "read_delimited": {
        "infer_column_types",
        "encoding",
        "header",
        "delimiter",
        "support_multi_line",
        "empty_as_string",
        "include_path_column",
        "path_column",
    },
    "read_parquet": {"include_path_column", "path_column"},
    "read_json_lines": {"invalid_lines", "encoding", "include_path_column", "path_column"},
    "read_delta_lake": {"timestamp_as_of", "version_as_of"},
}
_OTHERS = {
    "take",
    "take_random_sample",
    "drop_columns",
    "keep_columns",
    "convert_column_types",
    "skip",
    "filter",
    "extract_columns_from_partition_format",
}
_ENUMS = {
    "header": {
        "no_header",
        "from_first_file",
        "all_files_different_headers",
        "all_files_same_headers",
    },
    "encoding": {
        "utf8",
        "iso88591",
        "latin1",
        "ascii",
        "utf16",
        "utf32",
        "utf8bom",
        "windows1252",
    },
    "invalid_lines": {"error", "drop"},
}
_REMOTE = ("http://", "https://", "wasbs://", "abfss://", "adl://", "azureml://")


def check_folder(folder: Path) -> Iterator[tuple[Path, str, str]]:
    """(file, key, message) for every problem of the MLTable in `folder`."""
    mlt = folder / "MLTable"
    if not mlt.is_file():
        yield (
            folder,
            "",
            f"Not able to find MLTable file in {folder} (an mltable input is a folder "
            f"holding a file named MLTable)",
        )
        return
    yield from check_file(mlt)


def check_file(mlt: Path) -> Iterator[tuple[Path, str, str]]:
    import yaml

    try:
        with mlt.open("rb") as f:
            text = f.read(MAX_BYTES + 1)
        if len(text) > MAX_BYTES:
            yield mlt, "", f"larger than {MAX_BYTES} bytes: not an MLTable file"
            return
        spec = yaml.safe_load(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        yield mlt, "", f"cannot be read as YAML: {exc}"
        return
    if not isinstance(spec, dict):
        yield mlt, "", "expected a mapping with paths: and transformations:"
        return
    files = list(_check_paths(mlt, spec.get("paths")))
    problems = [p for p in files if isinstance(p, tuple)]
    yield from problems
    local = [p for p in files if isinstance(p, Path)]
    yield from _check_transformations(mlt, spec.get("transformations"), local)


def _check_paths(mlt: Path, paths: Any) -> Iterator[tuple[Path, str, str] | Path]:
    folder = mlt.parent
    if not isinstance(paths, list) or not paths:
        yield mlt, "paths", "expected a list of {file|folder|pattern: <path>} entries"
        return
    for i, entry in enumerate(paths):
        key = f"paths[{i}]"
        kinds = [k for k in ("file", "folder", "pattern") if isinstance(entry, dict) and k in entry]
        if len(kinds) != 1:
            yield mlt, key, "expected exactly one of file:, folder: or pattern:"
            continue
        kind = kinds[0]
        target = str(entry[kind])
        if target.startswith(_REMOTE):
            continue  # a cloud or datastore URI: resolved where the job runs
        target = target.removeprefix("file://")
        if kind == "pattern":
            base = Path(target) if Path(target).is_absolute() else None
            found = (
                sorted(Path(base.anchor).glob(str(base.relative_to(base.anchor))))
                if base
                else sorted(folder.glob(target.removeprefix("./")))
            )
            found = [f for f in found if f.is_file()]
            if not found:
                yield mlt, f"{key}.pattern", f"'{target}' matches no file under {folder}"
            yield from found
            continue
        p = Path(target) if Path(target).is_absolute() else folder / target
        if kind == "file" and not p.is_file():
            yield mlt, f"{key}.file", f"'{target}' is not a file ({p})"
        elif kind == "folder" and not p.is_dir():
            yield mlt, f"{key}.folder", f"'{target}' is not a folder ({p})"
        elif kind == "file":
            yield p
        else:
            yield from sorted(f for f in p.rglob("*") if f.is_file())


def _check_transformations(
    mlt: Path, transformations: Any, files: list[Path]
) -> Iterator[tuple[Path, str, str]]:
    if transformations is None:
        return
    if not isinstance(transformations, list):
        yield mlt, "transformations", "expected a list of transformations"
        return
    for i, step in enumerate(transformations):
        key = f"transformations[{i}]"
        params: Any
        if isinstance(step, str):
            name, params = step, {}
        elif isinstance(step, dict) and len(step) == 1:
            name, params = next(iter(step.items()))
            params = params if params is not None else {}
        else:
            yield mlt, key, "expected one transformation: {<name>: {<parameters>}}"
            continue
        if name in _READERS:
            if i != 0:
                yield mlt, f"{key}.{name}", "a read transformation must come first"
            if not isinstance(params, dict):
                yield mlt, f"{key}.{name}", "expected a mapping of parameters"
                continue
            for param, value in params.items():
                if param not in _READERS[name]:
                    yield (
                        mlt,
                        f"{key}.{name}.{param}",
                        f"unknown parameter (takes: {', '.join(sorted(_READERS[name]))})",
                    )
                elif param in _ENUMS and str(value) not in _ENUMS[param]:
                    allowed = ", ".join(sorted(_ENUMS[param]))
                    yield mlt, f"{key}.{name}.{param}", f"'{value}' is not one of {allowed}"
            if name == "read_delimited" and files:
                yield from _parse_delimited(mlt, f"{key}.{name}", files[0], params)
        elif name not in _OTHERS:
            known = ", ".join([*_READERS, *sorted(_OTHERS)])
            yield mlt, f"{key}.{name}", f"unknown transformation (known: {known})"


def _parse_delimited(
    mlt: Path, key: str, first: Path, params: dict[str, Any]
) -> Iterator[tuple[Path, str, str]]:
    """Read the first rows of the first file as the runtime would: a file that does not
    parse fails here, not at the step's first read."""
    import pandas as pd

    encodings = {
        "utf8": "utf-8",
        "utf8bom": "utf-8-sig",
        "iso88591": "iso-8859-1",
        "windows1252": "cp1252",
    }
    encoding = str(params.get("encoding", "utf8"))
    try:
        pd.read_csv(
            first,
            sep=str(params.get("delimiter", ",")),
            header=None if params.get("header") == "no_header" else 0,
            encoding=encodings.get(encoding, encoding.replace("utf", "utf-")),
            nrows=100,
        )
    except Exception as exc:  # pandas raises many kinds for a file it cannot parse
        yield mlt, key, f"{first.name} does not parse as delimited text: {exc}"


def inputs_of(raw: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(key, local path) of every `{type: mltable, path: <local>}` in a parsed YAML."""
    if isinstance(raw, dict):
        path = raw.get("path")
        if raw.get("type") == "mltable" and isinstance(path, str):
            local = path.removeprefix("file://")
            if not local.startswith(("azureml:", "${{")) and "://" not in local:
                yield (f"{where}.path" if where else "path"), local
        for k, v in raw.items():
            yield from inputs_of(v, f"{where}.{k}" if where else str(k))
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            yield from inputs_of(v, f"{where}[{i}]")


def check_yaml(path: Path, raw: Any) -> Iterator[tuple[Path, str, str]]:
    """Problems of the MLTable folders a job, component or data YAML names, reported
    against that YAML's key when the folder has no MLTable file."""
    for key, local in inputs_of(raw):
        folder = Path(local) if Path(local).is_absolute() else path.parent / local
        if not (folder / "MLTable").is_file():
            yield (
                path,
                key,
                f"Not able to find MLTable file in {local} ({folder}): an mltable input is "
                f"a folder holding a file named MLTable",
            )
            continue
        yield from check_file(folder / "MLTable")


def find_files(roots: list[Path]) -> list[Path]:
    """Every file named MLTable under `roots` (hidden folders skipped)."""
    found: set[Path] = set()
    for root in roots:
        if root.is_file():
            if root.name == "MLTable":
                found.add(root.resolve())
            continue
        for p in root.rglob("MLTable"):
            rel = p.relative_to(root).parts
            if p.is_file() and not any(part.startswith(".") for part in rel):
                found.add(p.resolve())
    return sorted(found)
