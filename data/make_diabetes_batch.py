"""Export unlabeled diabetes features to ``data/diabetes-batch/`` for batch scoring.

Batch endpoints and the parallel pipeline score a *folder* of CSV files, split into
mini-batches of files; a few small files make the split visible (several mini-batches)
while keeping the committed data tiny. Run once; the files are committed so that tests and
the data asset's content hash are stable.

    .venv/bin/python data/make_diabetes_batch.py
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_diabetes

OUT = Path(__file__).with_name("diabetes-batch")
FILES = 4


def main() -> None:
    # Same source and units as data/diabetes.csv (scaled=False), minus the target: this is
    # what a client would send for scoring.
    features = load_diabetes(as_frame=True, scaled=False).data
    OUT.mkdir(exist_ok=True)
    size = -(-len(features) // FILES)
    for i in range(FILES):
        part = features.iloc[i * size : (i + 1) * size]
        path = OUT / f"diabetes-batch-{i}.csv"
        part.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
        print(f"wrote {path} ({len(part)} rows)")


if __name__ == "__main__":
    main()
