"""Batch scoring driver for the digits model: `init()` once per worker, `run(mini_batch)` per
mini-batch of image file paths, as Azure ML batch deployments and parallel jobs call it.

Each image goes through digits_image.py, the same code prep used on the training images and
the online endpoint uses on requests (identical copies: each code folder must stand alone,
tests/e2e/project/test_digits_batch.py fails when they differ), so a file gets the label the endpoint
would give it. The result has one row per image, columns `file, label, probability` (the
predicted class's probability), appended to predictions.csv without a header as Azure does.

An image that cannot be decoded raises, naming the file: the mini-batch is retried and then
counted against the deployment's `error_threshold`, rather than silently missing from the
output (a row without a label would be indistinguishable from a prediction downstream).
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from digits_image import FEATURES, ImageError, features_from_bytes

model: Any = None
classes: list[Any] = []


def find_mlmodel_dir(root: Path) -> Path:
    """AZUREML_MODEL_DIR is the model's folder or its parent (Azure mounts registered MLflow
    models as <AZUREML_MODEL_DIR>/<artifact folder>): find the folder holding MLmodel."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLflow model (MLmodel file) under {root}")
    return found[0]


def load_model(model_dir: Path) -> Any:
    """The sklearn estimator from the MLflow model's pickle: importing MLflow would cost each
    worker seconds of start-up and adds nothing to predict_proba."""
    import cloudpickle
    import yaml

    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["sklearn"]
    with open(model_dir / flavor["pickled_model"], "rb") as f:
        return cloudpickle.load(f)


def init() -> None:
    global model, classes
    # Azure ML passes deployment/program arguments on the command line; ignore unknown ones.
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", default=None)
    args, _ = parser.parse_known_args()
    model = load_model(find_mlmodel_dir(Path(args.model_dir or os.environ["AZUREML_MODEL_DIR"])))
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    # The model was fitted on a p0..p63 DataFrame; we pass the same columns, so no warning
    # should fire, but a version skew in feature-name checks must not flood the logs.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")


def features_of(path: str) -> np.ndarray:
    try:
        return features_from_bytes(Path(path).read_bytes())
    except ImageError as exc:
        raise ValueError(f"{os.path.basename(path)}: {exc}") from None


def run(mini_batch: list[str]) -> pd.DataFrame:
    """One row per image file: its name, predicted label and that label's probability."""
    if not len(mini_batch):
        return pd.DataFrame({"file": [], "label": [], "probability": []})
    x = pd.DataFrame(np.vstack([features_of(p) for p in mini_batch]), columns=FEATURES)
    proba = model.predict_proba(x)
    best = proba.argmax(axis=1)
    return pd.DataFrame(
        {
            "file": [os.path.basename(p) for p in mini_batch],
            "label": [classes[i] for i in best],
            "probability": np.round(proba[np.arange(len(best)), best], 6),
        }
    )
