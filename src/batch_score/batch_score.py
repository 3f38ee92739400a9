"""Batch scoring driver for the diabetes model: `init()` once per worker, `run(mini_batch)`
per mini-batch, as Azure ML batch deployments and parallel jobs call it.

`mini_batch` is a list of CSV file paths (folder input) or a pandas DataFrame (tabular
input). The result has one row per input row, columns `row, prediction, file` in that
order: the layout Azure ML's MLflow no-code batch deployment writes to predictions.csv, so
both deployments of the model produce interchangeable files.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.types as patypes

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

model = None
takes_matrix = False


def find_mlmodel_dir(root: Path) -> Path:
    """AZUREML_MODEL_DIR is the model's folder or its parent (Azure mounts registered MLflow
    models as <AZUREML_MODEL_DIR>/<artifact folder>): find the folder holding MLmodel."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLflow model (MLmodel file) under {root}")
    return found[0]


def load_model(model_dir: Path):
    """The sklearn estimator inside an MLflow model.

    Read directly from the sklearn flavor's pickle: importing MLflow costs each worker ~3 s
    of start-up and adds nothing to `predict`. Other flavors go through mlflow.pyfunc.
    """
    import yaml

    meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = (meta.get("flavors") or {}).get("sklearn")
    if flavor and flavor.get("pickled_model"):
        if flavor.get("serialization_format", "cloudpickle") == "cloudpickle":
            import cloudpickle as pickler
        else:
            import pickle as pickler
        with open(model_dir / flavor["pickled_model"], "rb") as f:
            return pickler.load(f)
    import mlflow

    return mlflow.pyfunc.load_model(str(model_dir))


def read_matrix(path: str) -> np.ndarray:
    """The feature columns of one CSV file as a float matrix, in FEATURES order; errors name
    the file (the executor logs them as the mini-batch's failure).

    pyarrow's CSV reader straight to numpy: no pandas frame per file, which with sklearn's
    column-name checks was about a third of a mini-batch's time (bench/batch.py).
    """
    name = os.path.basename(path)
    try:
        table = pacsv.read_csv(path)
    except Exception as exc:
        raise ValueError(f"{name}: cannot read CSV: {exc}") from exc
    missing = [c for c in FEATURES if c not in table.column_names]
    if missing:
        raise ValueError(f"{name}: missing feature column(s) {', '.join(missing)}")
    columns = []
    for c in FEATURES:
        col = table.column(c)
        if not (patypes.is_integer(col.type) or patypes.is_floating(col.type)):
            raise ValueError(f"{name}: column '{c}' must be numeric, got {col.type} values")
        columns.append(col.to_numpy().astype(np.float64, copy=False))  # nulls become NaN
    x = np.column_stack(columns)
    if not np.isfinite(x).all():
        r, k = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name}: row {r}, column '{FEATURES[k]}' is empty or not finite")
    return x


def predict(frame: pd.DataFrame, source: str) -> np.ndarray:
    missing = [c for c in FEATURES if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing feature column(s) {', '.join(missing)}")
    return model.predict(frame[FEATURES])


def init() -> None:
    global model
    # Azure ML passes deployment/program arguments on the command line; ignore unknown ones.
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", default=None)
    args, _ = parser.parse_known_args()
    root = Path(args.model_dir or os.environ["AZUREML_MODEL_DIR"])
    model = load_model(find_mlmodel_dir(root))
    global takes_matrix
    # An sklearn estimator scores the float matrix directly; read_matrix has already put the
    # columns in FEATURES order, so sklearn's "X does not have valid feature names" warning
    # (once per predict) says nothing. Other MLflow flavors get a DataFrame, as pyfunc expects.
    takes_matrix = hasattr(model, "n_features_in_")
    if takes_matrix:
        warnings.filterwarnings("ignore", message="X does not have valid feature names")


def run(mini_batch) -> pd.DataFrame:
    if isinstance(mini_batch, pd.DataFrame):  # tabular input: rows, indexed by source row
        source = mini_batch.attrs.get("source", "")
        preds = predict(mini_batch, source or "mini-batch")
        return pd.DataFrame({"row": mini_batch.index, "prediction": preds, "file": source})
    names, rows, preds = [], [], []
    for path in mini_batch:
        x = read_matrix(path)
        names.append(os.path.basename(path))
        rows.append(np.arange(len(x)))
        preds.append(model.predict(x if takes_matrix else pd.DataFrame(x, columns=FEATURES)))
    # One frame for the whole mini-batch; `file` as a categorical (codes + names) instead of
    # one Python string per row, which is most of the cost of writing predictions.csv.
    categories = list(dict.fromkeys(names))  # same basename in two subfolders: one category
    index = [categories.index(n) for n in names]
    codes = np.repeat(np.array(index, dtype=int), [len(r) for r in rows])
    return pd.DataFrame(
        {
            "row": np.concatenate(rows) if rows else np.array([], dtype=int),
            "prediction": np.concatenate(preds) if preds else np.array([]),
            "file": pd.Categorical.from_codes(codes, categories=categories),
        }
    )
