"""Export scikit-learn's bundled diabetes set to ``data/diabetes.csv``.

Run once; the CSV is committed so that pipelines and tests never need scikit-learn's
loader (or a network) to get data, and so that the data hash logged by ``prep`` is stable.

    .venv/bin/python data/make_diabetes.py
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_diabetes

OUT = Path(__file__).with_name("diabetes.csv")


def main() -> None:
    # scaled=False keeps the original units (age in years, bmi, bp, ...), which is what a
    # scoring client would actually send; as_frame=True gives the named columns.
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.to_csv(OUT, index=False, float_format="%.6g", lineterminator="\n")
    print(f"wrote {OUT} ({len(frame)} rows, columns: {', '.join(frame.columns)})")


if __name__ == "__main__":
    main()
