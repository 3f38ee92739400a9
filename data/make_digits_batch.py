"""Copy a dozen digit PNGs from data/digits/ into the flat folder data/digits-batch/.

A batch deployment scores a folder of unlabeled files, so the sample is flat (no class
sub-folders: the label is what the deployment is asked for). The selection is fixed: the
last image of every class, plus the second-to-last 1 and 7 (the pair the models confuse
most), so the folder covers all ten digits. Names keep the sklearn index (`1796.png`),
which traces each file back to data/digits/<label>/ (tests/e2e/project/test_digits_batch.py checks).

    .venv/bin/python data/make_digits_batch.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parent
SOURCE = DATA / "digits"
OUT = DATA / "digits-batch"
EXTRA = {"1": 2, "7": 2}  # how many of the last images of these classes to take


def selection(source: Path = SOURCE) -> list[Path]:
    """The sample images, in class order (the same list on every run)."""
    picked: list[Path] = []
    for label in sorted(p.name for p in source.iterdir() if p.is_dir()):
        files = sorted((source / label).glob("*.png"))
        picked += files[-EXTRA.get(label, 1) :]
    return picked


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    files = selection()
    for f in files:
        shutil.copyfile(f, OUT / f.name)
    print(f"copied {len(files)} PNGs into {OUT}")


if __name__ == "__main__":
    main()
