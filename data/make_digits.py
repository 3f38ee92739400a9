"""Write scikit-learn's 8x8 handwritten digits as real PNG files, one folder per class.

Run once; `data/digits/` is committed so the digits pipeline works on image files (decoding
them is part of its prep step, as it would be for scanned digits), never on sklearn's
ready-made feature matrix, and so the data hash logged by prep is stable.

    .venv/bin/python data/make_digits.py

Pixels are stored as dark ink on white paper (255 - value * 255 / 16): how a scanned or
photographed digit looks. The pipeline and the scoring script both detect the polarity, so
light-on-dark images work too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

OUT = Path(__file__).with_name("digits")


def main() -> None:
    digits = load_digits()
    if OUT.exists():
        shutil.rmtree(OUT)
    counts: dict[int, int] = {}
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        pixels = np.round(255 - image * (255 / 16)).astype(np.uint8)
        folder = OUT / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        # The sklearn index in the name keeps files traceable to the original rows.
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png", optimize=True)
        counts[int(label)] = counts.get(int(label), 0) + 1
    print(f"wrote {sum(counts.values())} PNGs into {OUT}: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
