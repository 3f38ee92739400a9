"""Decode a folder of digit images (one sub-folder per class) into features and split it.

The output has the layout of the diabetes prep step (train.csv, test.csv, metadata.json
with `features`, `target` and `data_sha256`), which is what lets the generic evaluate and
register components take it unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from digits_image import FEATURES, features_from_bytes
from sklearn.model_selection import train_test_split

TARGET = "label"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def list_images(root: Path) -> list[tuple[Path, str]]:
    """(file, class) for every image under root/<class>/, sorted for a stable order."""
    found = [
        (p, p.parent.name)
        for p in sorted(root.glob("*/*"))
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not found:
        raise FileNotFoundError(f"no images under {root}/<class>/ (expected one folder per class)")
    return found


def folder_sha256(root: Path, files: list[tuple[Path, str]]) -> str:
    """One hash over every image's relative path and bytes: the data version of a model."""
    digest = hashlib.sha256()
    for path, _ in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_frame(root: Path) -> tuple[pd.DataFrame, str]:
    """Decode every image: columns p0..p63, label (int) and file (relative path)."""
    files = list_images(root)
    rows = np.vstack([features_from_bytes(p.read_bytes()) for p, _ in files])
    frame = pd.DataFrame(rows, columns=FEATURES)
    frame[TARGET] = [int(c) if c.isdigit() else c for _, c in files]
    frame["file"] = [p.relative_to(root).as_posix() for p, _ in files]
    return frame, folder_sha256(root, files)


def prepare(root: Path, output_dir: Path, test_size: float, seed: int) -> dict[str, Any]:
    """Stratified split (every class keeps its share in test), written like diabetes prep."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    frame, sha = load_frame(root)
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, shuffle=True, stratify=frame[TARGET]
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(output_dir / "train.csv", index=False, float_format="%.6g")
    test.to_csv(output_dir / "test.csv", index=False, float_format="%.6g")
    metadata = {
        "data_sha256": sha,
        "source_file": root.name,
        "rows": len(frame),
        "train_rows": len(train),
        "test_rows": len(test),
        "test_size": test_size,
        "seed": seed,
        "features": FEATURES,
        "target": TARGET,
        "classes": sorted(frame[TARGET].unique().tolist()),
        "task": "classification",
    }
    (output_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
