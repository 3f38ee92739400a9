"""Scoring driver for MLflow no-code batch deployments (an mlflow_model, no
`code_configuration`), standing in for the one Azure ML generates.

Like Azure's: the model is loaded once per worker as an MLflow pyfunc (its signature is
enforced, so column names and types must match training); every file of a mini-batch is
read as CSV (or Parquet) and predicted in one call; the result has one row per input row,
columns `row, prediction, file_name`, which `append_row` writes to predictions.csv without a
header. A file that cannot be read or scored fails its mini-batch, naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

model: Any = None
dtypes: dict[str, str] = {}  # CSV column -> dtype, from the model's input signature
_NUMPY = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


def _model_path(root: Path) -> Path:
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLmodel file under {root}")
    return found[0]


def init() -> None:
    global model, dtypes
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(_model_path(Path(os.environ["AZUREML_MODEL_DIR"]))))
    # Read CSV columns as the signature declares them: pandas reads "59" as int64, which
    # MLflow refuses to cast to a double column ("can not safely convert").
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        for spec in schema.inputs:
            kind = getattr(getattr(spec, "type", None), "name", None)
            if spec.name and kind in _NUMPY:
                dtypes[spec.name] = _NUMPY[kind]


# A CSV is read and predicted this many rows at a time: a 400 MB file read whole made a
# worker peak at 3.07 GB (issue 32); in chunks the peak is a chunk and the predictions.
CHUNK_ROWS = int(os.environ.get("AMLOCAL_BATCH_CHUNK_ROWS") or 50_000)


def _read(path: str) -> Any:
    """The file's frames: one for Parquet, CHUNK_ROWS rows at a time for CSV."""
    import pandas as pd

    if path.lower().endswith(".parquet"):
        return iter([pd.read_parquet(path)])
    return pd.read_csv(path, dtype=dtypes or None, chunksize=CHUNK_ROWS)


def _predictions(frame: Any) -> Any:
    import numpy as np
    import pandas as pd

    pred = model.predict(frame)
    if isinstance(pred, pd.DataFrame):
        pred = pred.iloc[:, 0] if pred.shape[1] == 1 else pred.to_numpy().tolist()
    if isinstance(pred, pd.Series):
        pred = pred.to_numpy()
    return np.asarray(pred).tolist() if not isinstance(pred, list) else pred


def run(mini_batch: Any) -> Any:
    import pandas as pd

    if isinstance(mini_batch, pd.DataFrame):  # tabular input split by rows
        return pd.DataFrame(
            {
                "row": mini_batch.index,
                "prediction": _predictions(mini_batch),
                "file_name": mini_batch.attrs.get("source", ""),
            }
        )
    parts = []
    for path in mini_batch:
        name = os.path.basename(path)
        done = 0
        try:
            for frame in _read(path):  # each chunk's result is a compact frame at once
                preds = _predictions(frame)
                rows = range(done, done + len(frame))
                parts.append(pd.DataFrame({"row": rows, "prediction": preds, "file_name": name}))
                done += len(frame)
        except Exception as exc:  # the executor logs this message: name the file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            detail = f"{first[:300]}..." if len(first) > 300 else first
            raise ValueError(f"{name}: {type(exc).__name__}: {detail}") from exc
    if not parts:
        return pd.DataFrame({"row": [], "prediction": [], "file_name": []})
    return pd.concat(parts, ignore_index=True)
