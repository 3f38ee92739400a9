"""Splitting an input into mini-batches: a folder into groups of files, a CSV/TSV file or an
MLTable folder into row ranges."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlocal import yamlsafe
from amlocal.errors import InvalidInput

# A tabular input with no mini_batch_size: the parallel runtime's documented 1 MB.
DEFAULT_TABULAR_BATCH = "1MB"


@dataclass
class MiniBatch:
    """One unit of work: files (kind "files") or CSV row ranges (kind "rows")."""

    index: int
    kind: str
    items: list[Any]
    n_items: int
    label: str


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}


def parse_mini_batch_size(value: int | str) -> tuple[int | None, int | None]:
    """(count, bytes): `10` is a count (files, or rows for tabular input); `100kb`, `1MB`
    are approximate sizes in bytes, as the parallel runtime accepts for tabular data."""
    if isinstance(value, bool):
        raise InvalidInput(f"mini_batch_size: expected a number or a size like 10kb, got {value}")
    if isinstance(value, int):
        n = value
        if n < 1:
            raise InvalidInput(f"mini_batch_size must be at least 1, got {n}")
        return n, None
    m = _SIZE.match(str(value))
    if not m:
        raise InvalidInput(f"mini_batch_size: expected a number or a size like 10kb, got {value!r}")
    unit = m[2].lower() if m[2] else None
    if unit is None:
        return parse_mini_batch_size(int(float(m[1])))
    size = int(float(m[1]) * _UNITS[unit])
    if size < 1:
        raise InvalidInput(f"mini_batch_size must be positive, got {value!r}")
    return None, size


def list_files(folder: Path) -> list[Path]:
    """Files under a folder, recursively, sorted by relative path; hidden names skipped."""
    out: list[Path] = []
    for dirpath, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(dirpath) / n for n in names if not n.startswith("."))
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def plan(
    path: Path, mini_batch_size: int | str | None, *, split: str | None = None
) -> list[MiniBatch]:
    """Split an input into mini-batches. `split` is "files" or "rows"; by default a folder
    is split by files (an MLTable folder by rows) and a single file by rows."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"input {path} does not exist")
    is_mltable = path.is_dir() and (path / "MLTable").is_file()
    split = split or ("rows" if path.is_file() or is_mltable else "files")
    if split == "files":
        files = list_files(path) if path.is_dir() else [path]
        if not files:
            raise InvalidInput(f"input folder {path} contains no files: nothing to score")
        count, size = parse_mini_batch_size(mini_batch_size or 1)
        return _file_batches(files, path if path.is_dir() else path.parent, count, size)
    files = mltable_files(path) if is_mltable else list_files(path) if path.is_dir() else [path]
    files = [f for f in files if f.suffix.lower() in TABULAR_SUFFIXES]
    if not files:
        raise InvalidInput(f"input {path} has no delimited text (.csv/.tsv) files to split by rows")
    count, size = parse_mini_batch_size(mini_batch_size or DEFAULT_TABULAR_BATCH)
    batches: list[MiniBatch] = []
    for f in files:
        for rng in split_rows(f, rows=count, size=size):
            label = f"{f.name} rows {rng['first_row']}-{rng['first_row'] + rng['rows'] - 1}"
            batches.append(MiniBatch(len(batches), "rows", [rng], rng["rows"], label))
    if not batches:
        raise InvalidInput(f"input {path} has no data rows: nothing to score")
    return batches


def _file_batches(
    files: list[Path], root: Path, count: int | None, size: int | None
) -> list[MiniBatch]:
    groups: list[list[Path]] = []
    if count is not None:
        groups = [files[i : i + count] for i in range(0, len(files), count)]
    else:
        cur: list[Path] = []
        total = 0
        for f in files:
            cur.append(f)
            total += f.stat().st_size
            if total >= (size or 1):
                groups.append(cur)
                cur, total = [], 0
        if cur:
            groups.append(cur)
    out = []
    for i, g in enumerate(groups):
        names = [_rel(f, root) for f in g]
        label = ", ".join(names) if len(names) <= 4 else f"{names[0]} ... {names[-1]}"
        out.append(MiniBatch(i, "files", [str(f) for f in g], len(g), label))
    return out


def _rel(f: Path, root: Path) -> str:
    try:
        return f.relative_to(root).as_posix()
    except ValueError:
        return str(f)


def mltable_files(folder: Path) -> list[Path]:
    """Files an MLTable names under `paths:` (`file`, `folder`, or `pattern` entries)."""

    spec = yamlsafe.load_file(folder / "MLTable") or {}
    out: list[Path] = []
    for entry in spec.get("paths") or []:
        for key in ("file", "folder", "pattern"):
            if key in entry:
                target = str(entry[key]).removeprefix("file://")
                if key == "pattern":
                    out.extend(sorted(folder.glob(target.removeprefix("./"))))
                else:
                    p = (folder / target).resolve()
                    out.extend(list_files(p) if key == "folder" else [p])
    return [p for p in out if p.is_file()]


def split_rows(path: Path, *, rows: int | None, size: int | None) -> list[dict[str, Any]]:
    """Row ranges of a delimited text file: byte offsets cut at line ends, never reading more
    than a chunk at a time. Blank lines are not rows (pandas skips them). Quoted fields
    containing newlines are not supported: such a file must be split by files instead."""
    import mmap

    import numpy as np

    sep = TABULAR_SUFFIXES.get(path.suffix.lower(), ",")
    n_bytes = path.stat().st_size
    if n_bytes == 0:
        return []
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = np.frombuffer(mm, dtype=np.uint8)
        chunk = 1 << 24
        ends = np.concatenate(
            [np.flatnonzero(buf[i : i + chunk] == 10) + i for i in range(0, n_bytes, chunk)]
        )
        if not len(ends) or ends[-1] != n_bytes - 1:  # last line without a newline
            ends = np.append(ends, n_bytes)
        header_end = int(ends[0]) + 1
        ends = ends[1:]
        if not len(ends):
            return []
        starts = np.concatenate([[header_end], ends[:-1] + 1])
        lengths = ends - starts
        first = buf[np.minimum(starts, n_bytes - 1)]
        blank = (lengths == 0) | ((lengths == 1) & (first == 13))
        del buf, first
    keep = np.flatnonzero(~blank)
    if not len(keep):
        return []
    out = []
    if rows is not None:
        cuts = list(range(0, len(keep), rows))
    else:
        cuts, nxt = [], 0
        offsets = starts[keep]
        while nxt < len(keep):
            cuts.append(nxt)
            nxt = max(nxt + 1, int(np.searchsorted(offsets, offsets[nxt] + (size or 1))))
    cuts.append(len(keep))
    for a, b in zip(cuts, cuts[1:], strict=False):
        out.append(
            {
                "path": str(path),
                "sep": sep,
                "header_end": header_end,
                "start": int(starts[keep[a]]),
                "end": min(int(ends[keep[b - 1]]) + 1, n_bytes),
                "first_row": a,
                "rows": b - a,
            }
        )
    return out
