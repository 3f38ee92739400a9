"""Versions of installed distributions, read from their `.dist-info` folder names.

`importlib.metadata.version` imports the email and zipfile machinery and asks every path
finder (the editable install's included) for every lookup: 40-90 ms on a quiet machine, and
it sat on every `job create` (the validation cache is keyed by azure-ai-ml's version).
Scanning `sys.path` for `<name>-<version>.dist-info`, the name installers write (PEP 427 /
the core metadata spec's "Recording installed projects"), takes about 1 ms. Anything the
scan cannot see (an egg, a zipped path entry) is asked of `importlib.metadata`.
"""

from __future__ import annotations

import functools
import os
import re
import sys


def _normal(name: str) -> str:
    """PEP 503 normalization, with `_` as installers write it in folder names."""
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache
def _installed() -> dict[str, str]:
    """{normalized name: version} of every `.dist-info` on sys.path, first entry wins as
    for imports: one scan per process, however many requirements are checked."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            it = os.scandir(entry or ".")
        except OSError:
            continue
        with it:
            for d in it:
                if d.name.endswith(".dist-info"):
                    stem, _, ver = d.name[: -len(".dist-info")].partition("-")
                    if ver:
                        found.setdefault(_normal(stem), ver)
    return found


def version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None when it is not installed."""
    found = _installed().get(_normal(dist))
    if found is not None:
        return found
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def installed() -> dict[str, str]:
    """{name as in its folder, lowercased: version} of every distribution on sys.path."""
    return dict(_installed())
