"""Split the diabetes CSV into train/test and fingerprint the source data.

Kept free of MLflow and argparse so it can be unit-tested and reused; prep.py is the entry
point Azure ML (or amlocal) runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
TARGET = "target"
TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"
METADATA_FILE = "metadata.json"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of the raw input bytes: the data hash tagged on registered model versions."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_input_file(path: Path) -> Path:
    """Accept the CSV itself or a folder holding exactly one CSV.

    A uri_file input arrives as a file path, but people also pass a uri_folder (for example
    a registered folder asset); both should work.
    """
    if path.is_file():
        return path
    csvs = sorted(path.glob("*.csv")) if path.is_dir() else []
    if len(csvs) != 1:
        raise FileNotFoundError(f"expected a CSV file or a folder with one CSV, got {path}")
    return csvs[0]


def load_dataset(path: Path) -> pd.DataFrame:
    """Read the CSV and check it has the 10 features and the target, nothing missing."""
    frame = pd.read_csv(path)
    missing = [c for c in [*FEATURES, TARGET] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name} lacks columns {missing}")
    frame = frame[[*FEATURES, TARGET]]
    if frame.isna().any().any():
        raise ValueError(f"{path.name} has missing values")
    return frame


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split: the same seed gives the same test rows, so challenger and champion
    are compared on identical data run after run."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, shuffle=True)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def prepare(input_path: Path, output_dir: Path, test_size: float, seed: int) -> dict[str, Any]:
    """Write train.csv, test.csv and metadata.json into output_dir; return the metadata."""
    source = resolve_input_file(input_path)
    frame = load_dataset(source)
    train, test = split(frame, test_size, seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(output_dir / TRAIN_FILE, index=False)
    test.to_csv(output_dir / TEST_FILE, index=False)
    metadata = {
        "data_sha256": sha256_file(source),
        "source_file": source.name,
        "rows": len(frame),
        "train_rows": len(train),
        "test_rows": len(test),
        "test_size": test_size,
        "seed": seed,
        "features": FEATURES,
        "target": TARGET,
    }
    (output_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def read_metadata(prepared_dir: Path) -> dict[str, Any]:
    """Read what prepare() wrote; used by downstream steps that receive the prep output."""
    return json.loads((prepared_dir / METADATA_FILE).read_text())
