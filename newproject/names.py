"""The Jinja layer that turns this repository into a copier template without editing it.

Copier renders every file of the template (``_templates_suffix: ""`` in copier.yml); this
extension's ``preprocess`` runs before Jinja parses a file. It escapes the whole file
(``{% raw %}``), so ``${{parent.inputs.x}}`` in Azure ML YAML and ``${{ secrets.X }}`` in
workflows stay literal, and re-opens Jinja only where the file holds one of the literals
declared in ``names.yml`` (this repository's project-specific names and data schema), which
becomes the declared expression over copier's answers. The repository's own files therefore
stay plain, runnable Azure ML YAML and Python; what is project-specific is declared once.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2.ext import Extension

NAMES_FILE = Path(__file__).with_name("names.yml")
RAW_END = re.compile(r"{%-?\s*endraw")


@cache
def declarations() -> dict[str, Any]:
    """names.yml, parsed once per process."""
    return yaml.safe_load(NAMES_FILE.read_text())


def _pattern(mapping: dict[str, str]) -> re.Pattern[str] | None:
    """One alternation, longest literal first, so `diabetes-model` wins over `diabetes`."""
    if not mapping:
        return None
    keys = sorted(mapping, key=len, reverse=True)
    return re.compile("|".join(re.escape(k) for k in keys))


def mapping_for(path: str | None) -> dict[str, str]:
    """The literals that apply to one template file: its own entries, then the global names."""
    decl = declarations()
    merged: dict[str, str] = {}
    if path is not None:
        for glob, entries in (decl.get("files") or {}).items():
            if fnmatch.fnmatchcase(path, glob):
                merged.update(entries)
    for key, value in (decl.get("names") or {}).items():
        merged.setdefault(key, value)
    return merged


def is_verbatim(path: str) -> bool:
    """Files copied byte for byte (the engine and its benchmarks)."""
    return any(fnmatch.fnmatchcase(path, g) for g in declarations().get("verbatim") or [])


def to_template(source: str, path: str | None) -> str:
    """The source as a Jinja template: literal text in raw blocks, declared names as Jinja."""
    if RAW_END.search(source):
        raise ValueError(f"{path or source!r}: contains a Jinja 'endraw' tag; cannot be templated")
    pattern = None if path is not None and is_verbatim(path) else _pattern(mapping_for(path))
    mapping = mapping_for(path)
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(source) if pattern else ():
        out.append(_raw(source[pos : match.start()]))
        out.append(mapping[match.group(0)])
        pos = match.end()
    out.append(_raw(source[pos:]))
    return "".join(out)


def _raw(text: str) -> str:
    return "{% raw %}" + text + "{% endraw %}" if text else ""


class ProjectNames(Extension):
    """Copier loads it through ``_jinja_extensions`` in copier.yml."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        # Strings without a file name are either copier.yml's own expressions (defaults,
        # validators, _exclude), which are Jinja already, or path parts, which are plain text.
        if name is None and ("{{" in source or "{%" in source):
            return source
        return to_template(source, name)
