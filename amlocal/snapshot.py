"""Code snapshots as Azure ML takes them: `.amlignore` wins over `.gitignore`, same syntax.

The snapshot's content digest is part of the reuse fingerprint; the working copy for a job
is made from the same file list, so what runs is exactly what was hashed.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

from amlocal.hashing import tree_digest
from amlocal.store import Store

_ALWAYS_IGNORED = {".git", "__pycache__", ".amlignore", ".gitignore"}


def _patterns(root: Path) -> list[str]:
    for name in (".amlignore", ".gitignore"):
        f = root / name
        if f.is_file():
            lines = f.read_text().splitlines()
            return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    return []


def _ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    """gitignore matching for the common cases: globs, dir/ suffix, anchored /x, negation."""
    ignored = False
    name = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        if p.endswith("/"):
            if not is_dir:
                continue
            p = p[:-1]
        anchored = p.startswith("/") or "/" in p.strip("/")
        p = p.lstrip("/")
        hit = fnmatch.fnmatch(rel, p) if anchored else fnmatch.fnmatch(name, p)
        hit = hit or fnmatch.fnmatch(rel, p + "/*") if anchored else hit
        if hit:
            ignored = not neg
    return ignored


def snapshot_files(root: Path) -> list[Path]:
    """The files Azure ML would upload for `code: root`."""
    if root.is_file():
        return [root]
    patterns = _patterns(root)
    out: list[Path] = []
    for dirpath, dirs, names in os.walk(root):
        base = Path(dirpath)
        rel_base = base.relative_to(root).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        dirs[:] = [
            d for d in dirs if d not in _ALWAYS_IGNORED and not _ignored(prefix + d, True, patterns)
        ]
        out.extend(
            base / n
            for n in names
            if n not in _ALWAYS_IGNORED
            and not n.endswith(".pyc")
            and not _ignored(prefix + n, False, patterns)
        )
    return sorted(out)


def snapshot_digest(root: Path, store: Store | None = None) -> str:
    return tree_digest(root, snapshot_files(root), store)


def materialize(root: Path, dest: Path) -> None:
    """Copy the snapshot into `dest` (the step's working directory)."""
    dest.mkdir(parents=True, exist_ok=True)
    if root.is_file():
        shutil.copy2(root, dest / root.name)
        return
    for f in snapshot_files(root):
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)  # a copy, never a link: a script may rewrite its own files
