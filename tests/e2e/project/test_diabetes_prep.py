"""Unit tests for src/prep/prep_lib.py (the split and the data hash)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "src" / "prep"))

import prep_lib  # noqa: E402

CSV = ROOT / "data" / "diabetes.csv"


def test_committed_csv_is_the_scikit_learn_diabetes_set() -> None:
    from sklearn.datasets import load_diabetes

    expected = load_diabetes(as_frame=True, scaled=False).frame
    actual = pd.read_csv(CSV)
    assert list(actual.columns) == [*prep_lib.FEATURES, prep_lib.TARGET]
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, atol=1e-9)


def test_sha256_matches_hashlib_and_changes_with_content(tmp_path: Path) -> None:
    assert prep_lib.sha256_file(CSV) == hashlib.sha256(CSV.read_bytes()).hexdigest()
    changed = tmp_path / "d.csv"
    changed.write_bytes(CSV.read_bytes() + b"\n")
    assert prep_lib.sha256_file(changed) != prep_lib.sha256_file(CSV)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    frame = prep_lib.load_dataset(CSV)
    train, test = prep_lib.split(frame, test_size=0.2, seed=7)
    train2, test2 = prep_lib.split(frame, test_size=0.2, seed=7)
    pd.testing.assert_frame_equal(test, test2)
    pd.testing.assert_frame_equal(train, train2)
    assert len(test) == pytest.approx(0.2 * len(frame), abs=1)
    assert len(train) + len(test) == len(frame)
    rows = pd.concat([train, test]).sort_values(list(frame.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        rows, frame.sort_values(list(frame.columns)).reset_index(drop=True)
    )
    _, other = prep_lib.split(frame, test_size=0.2, seed=8)
    assert not other.equals(test)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1])
def test_split_rejects_degenerate_test_size(test_size: float) -> None:
    with pytest.raises(ValueError, match="test_size"):
        prep_lib.split(prep_lib.load_dataset(CSV), test_size=test_size, seed=0)


def test_prepare_writes_splits_and_metadata(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()  # the platform hands over an existing empty folder
    metadata = prep_lib.prepare(CSV, out, test_size=0.25, seed=42)
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "test.csv", "train.csv"]
    assert (
        prep_lib.read_metadata(out) == metadata == json.loads((out / "metadata.json").read_text())
    )
    assert metadata["data_sha256"] == hashlib.sha256(CSV.read_bytes()).hexdigest()
    train, test = pd.read_csv(out / "train.csv"), pd.read_csv(out / "test.csv")
    assert (metadata["train_rows"], metadata["test_rows"]) == (len(train), len(test))
    assert len(test) == pytest.approx(0.25 * metadata["rows"], abs=1)
    assert list(test.columns) == metadata["features"] + [metadata["target"]]


def test_prepare_accepts_a_folder_with_one_csv(tmp_path: Path) -> None:
    folder = tmp_path / "asset"
    folder.mkdir()
    (folder / "diabetes.csv").write_bytes(CSV.read_bytes())
    metadata = prep_lib.prepare(folder, tmp_path / "out", test_size=0.2, seed=1)
    assert metadata["source_file"] == "diabetes.csv"
    (folder / "another.csv").write_text("x\n1\n")
    with pytest.raises(FileNotFoundError):
        prep_lib.prepare(folder, tmp_path / "out2", test_size=0.2, seed=1)


def test_load_dataset_rejects_missing_columns_and_values(tmp_path: Path) -> None:
    frame = pd.read_csv(CSV)
    frame.drop(columns=["bmi"]).to_csv(tmp_path / "no_bmi.csv", index=False)
    with pytest.raises(ValueError, match="bmi"):
        prep_lib.load_dataset(tmp_path / "no_bmi.csv")
    frame.loc[3, "bp"] = None
    frame.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(ValueError, match="missing values"):
        prep_lib.load_dataset(tmp_path / "gap.csv")
