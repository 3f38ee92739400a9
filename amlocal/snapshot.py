"""Code snapshots as Azure ML takes them: `.amlignore` wins over `.gitignore`, same syntax.

The snapshot's content digest is part of the reuse fingerprint; the working copy for a job
is made from the same file list, so what runs is exactly what was hashed.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.hashing import file_digest, text_digest, tree_digest
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
    # Symbolic links to folders are followed, as Azure's upload does (os.walk skipped them:
    # their files were silently missing); a link back into a folder being walked is not.
    open_dirs: dict[str, str] = {}  # path walked -> its real path
    for dirpath, dirs, names in os.walk(root, followlinks=True):
        base = Path(dirpath)
        real = os.path.realpath(dirpath)
        open_dirs[dirpath] = real
        ancestors = {open_dirs.get(str(p), "") for p in [base, *base.parents]}
        rel_base = base.relative_to(root).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        dirs[:] = [
            d
            for d in dirs
            if d not in _ALWAYS_IGNORED
            and not _ignored(prefix + d, True, patterns)
            and os.path.realpath(base / d) not in ancestors
        ]
        out.extend(
            base / n
            for n in names
            if n not in _ALWAYS_IGNORED
            and not n.endswith(".pyc")
            and not _ignored(prefix + n, False, patterns)
        )
    return sorted(out)


def snapshot_digest(root: Path, store: Store | None = None, includes: Includes = ()) -> str:
    digest = tree_digest(root, snapshot_files(root), store)
    return text_digest(digest, *_include_parts(includes, store)) if includes else digest


def snapshot_digest_includes(includes: Includes, store: Store | None = None) -> str | None:
    """The digest of a snapshot made of additional includes only (a component without code)."""
    return text_digest(*_include_parts(includes, store)) if includes else None


def _include_parts(includes: Includes, store: Store | None) -> list[str]:
    parts = []
    for rel, src, zipped in include_entries(includes):
        content = (
            tree_digest(src, snapshot_files(src), store) if zipped else file_digest(src, store)
        )
        parts.append(f"{rel}\0{'zip:' if zipped else ''}{content}")
    return parts


def materialize(root: Path | None, dest: Path, includes: Includes = ()) -> None:
    """Copy the snapshot (and its additional includes) into `dest`, the working directory."""
    dest.mkdir(parents=True, exist_ok=True)
    if root is not None and root.is_file():
        shutil.copy2(root, dest / root.name)
    elif root is not None:
        for f in snapshot_files(root):
            target = dest / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)  # a copy, never a link: a script may rewrite its own files
    for rel, src, zipped in include_entries(includes):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if zipped:
            _zip_folder(src, target)
        else:
            shutil.copy2(src, target)


# -- additional_includes ------------------------------------------------------------------
Includes = Sequence[str]


def absolute_includes(component: Any) -> list[str]:
    """A component entity's `additional_includes` as absolute paths: each is relative to the
    component YAML's folder (azure-ai-ml's AdditionalIncludes.base_path). Azure DevOps
    artifact entries (`type: artifact`) need a feed: refused offline."""
    configs = list(getattr(component, "additional_includes", None) or [])
    if not configs:
        return []
    base = Path(component._get_base_path_for_code())
    out = []
    for c in configs:
        if not isinstance(c, str):
            raise InvalidInput(
                f"additional_includes: {c!r}: Azure DevOps artifact includes need their feed; "
                "only local files and folders work offline"
            )
        out.append(str((base / c).resolve()))
    return out


def include_entries(includes: Includes) -> list[tuple[str, Path, bool]]:
    """(path in the snapshot, source file, zipped) for every included file, as azure-ai-ml
    merges them: a file or folder lands at the snapshot root under its own name (folders
    merged, their `.amlignore`/`.gitignore` applied); `x.zip` naming a folder `x` (and no
    file `x.zip`) is that folder zipped."""
    out: list[tuple[str, Path, bool]] = []
    for inc in includes:
        src = Path(inc)
        if src.suffix == ".zip" and not src.exists() and src.with_suffix("").is_dir():
            out.append((src.name, src.with_suffix(""), True))
        elif src.is_file():
            out.append((src.name, src, False))
        elif src.is_dir():
            out.extend(
                (f"{src.name}/{f.relative_to(src).as_posix()}", f, False)
                for f in snapshot_files(src)
            )
        else:
            raise InvalidInput(f"additional_includes: {inc} does not exist")
    return out


def _zip_folder(folder: Path, target: Path) -> None:
    """The zip azure-ai-ml builds: the folder itself as the root entry, files sorted."""
    import zipfile  # only for zipped folders: every job create imports this module

    with zipfile.ZipFile(target, "w") as zf:
        zf.write(folder, folder.name)
        for f in snapshot_files(folder):
            zf.write(f, os.path.relpath(f, folder.parent))
