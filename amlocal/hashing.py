"""Content hashes for reuse: files and folders by content, with a (size, mtime) fast path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from amlocal.store import Store


def file_digest(path: Path, store: Store | None = None) -> str:
    """sha256 of a file; cached by (path, size, mtime_ns) so unchanged data is not re-read."""
    st = path.stat()
    key = f"fh:{path}:{st.st_size}:{st.st_mtime_ns}"
    if store is not None and (hit := store.cache_get(key)):
        return hit
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if store is not None and st.st_size > 1 << 16:  # only worth caching for larger files
        store.cache_put(key, digest)
    return digest


def tree_digest(root: Path, files: list[Path] | None = None, store: Store | None = None) -> str:
    """Digest of a folder (relative names + contents) or of a single file."""
    if root.is_file():
        return file_digest(root, store)
    h = hashlib.sha256()
    for f in sorted(files if files is not None else _walk(root)):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(file_digest(f, store).encode())
    return h.hexdigest()


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _dirs, names in os.walk(root):
        out.extend(Path(dirpath) / n for n in names)
    return out


def text_digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()
