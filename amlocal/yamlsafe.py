"""Reading untrusted YAML: refuse alias bombs, recursive aliases and deep nesting before
anything is built from the file.

Why: YAML aliases let a few hundred bytes stand for billions of nodes (`&a [*b, *b, ...]`
nine times over); PyYAML builds them as shared references, so parsing is cheap but every walk
of the result (the walk for referenced files, azure-ai-ml's schema load, `json.dumps`) expands them. A
recursive alias makes a cyclic value, and very deep nesting exhausts Python's recursion limit
in the composer. Each file is first scanned as an event stream (libyaml's parser when PyYAML
has it; the scan itself never recurses and never expands an alias): the nodes the aliases
would expand to are counted, and the scan stops at the first limit crossed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput

# Far above any Azure ML file (a large pipeline is a few thousand nodes, a few levels deep,
# and rarely uses an alias), far below what hurts: walking 200,000 nodes takes ~0.1 s.
MAX_ALIASES = 1_000
MAX_DEPTH = 100
MAX_NODES = 200_000

# Keys whose string value names another local YAML file azure-ai-ml reads on its own.
REF_KEYS = ("component", "conda_file", "trial", "create_job")


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check(text: str | bytes, where: str | Path) -> None:
    """Raise InvalidInput naming `where` if the YAML in `text` has too many aliases, a
    recursive alias, nesting deeper than MAX_DEPTH or more than MAX_NODES nodes once its
    aliases are expanded. Syntax errors are left to the parser that reads the file next."""
    import yaml

    aliases = 0
    total = 0
    sizes: dict[str, int] = {}  # anchor -> expanded node count (closed anchors only)
    stack: list[list[Any]] = []  # open collections: [anchor, expanded node count]
    try:
        for event in yaml.parse(text, Loader=_loader()):
            if isinstance(event, yaml.StreamStartEvent | yaml.StreamEndEvent):
                continue
            if isinstance(event, yaml.DocumentStartEvent | yaml.DocumentEndEvent):
                sizes.clear()  # anchors do not cross documents
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, count = stack.pop()
                if anchor is not None:
                    sizes[anchor] = count
                if stack:
                    stack[-1][1] += count
                continue
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise InvalidInput(
                        f"{where}: more than {MAX_ALIASES} YAML aliases; refused before "
                        "expanding them"
                    )
                if any(frame[0] == event.anchor for frame in stack):
                    raise InvalidInput(
                        f"{where}: line {event.start_mark.line + 1}: the alias *{event.anchor} "
                        "refers to a node that contains it (a recursive YAML alias)"
                    )
                size = sizes.get(event.anchor, 1)  # undefined: the parser reports it next
            elif isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise InvalidInput(
                        f"{where}: line {event.start_mark.line + 1}: YAML nested more than "
                        f"{MAX_DEPTH} levels deep"
                    )
                stack.append([event.anchor, 1])
                size = 1
            else:  # a scalar
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            total += size
            if total > MAX_NODES:
                raise InvalidInput(
                    f"{where}: line {event.start_mark.line + 1}: the YAML expands to more than "
                    f"{MAX_NODES} nodes once its aliases are expanded (an alias bomb?); "
                    "refused before expanding it"
                )
            if stack and not isinstance(event, yaml.CollectionStartEvent):
                stack[-1][1] += size
    except yaml.YAMLError:
        return  # not valid YAML: the reader that follows names the file and the line


def load(text: str | bytes, where: str | Path) -> Any:
    """yaml.safe_load for untrusted text, after `check`."""
    import yaml

    check(text, where)
    return yaml.load(text, Loader=_loader())


def load_file(path: str | Path) -> Any:
    """The YAML in `path` (UTF-8), after `check`."""
    path = Path(path)
    return load(path.read_text(encoding="utf-8"), path)


def check_tree(path: Path) -> None:
    """`check` the YAML file at `path` and every local YAML file it names (a job's
    components, a sweep's trial, a schedule's job, conda files), recursively: azure-ai-ml
    reads them itself, so each is checked before it is handed the first."""
    seen: set[Path] = set()
    todo = [Path(path).resolve()]
    while todo:
        p = todo.pop()
        if p in seen or not p.is_file() or p.suffix not in (".yml", ".yaml"):
            continue
        seen.add(p)
        try:
            text = p.read_bytes()
        except OSError:
            continue  # the loader reports an unreadable file
        try:
            data = load(text, p)
        except InvalidInput:
            raise
        except Exception:  # not YAML, not UTF-8: the loader names the file and the line
            continue
        todo.extend((p.parent / ref).resolve() for ref in file_refs(data))


def file_refs(node: Any) -> list[str]:
    """The local files a parsed YAML names under REF_KEYS. Iterative, and each shared
    node (an alias) is walked once: `check` bounds the expanded size, this bounds the time."""
    refs: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [node]
    while todo:
        n = todo.pop()
        if not isinstance(n, dict | list) or id(n) in seen:
            continue
        seen.add(id(n))
        items: Iterable[Any] = n.values() if isinstance(n, dict) else n
        if isinstance(n, dict):
            for k, v in n.items():
                if k in REF_KEYS and isinstance(v, str):
                    if not v.startswith(("azureml:", "http", "${{")):
                        refs.append(v.removeprefix("file:"))
        todo.extend(reversed(list(items)))
    return refs
