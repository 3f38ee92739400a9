"""Scoring script for the diabetes model on Azure ML managed online endpoints (and amlocal).

Contract: `init()` once per worker, `run(data)` per request, served by azmlinfsrv.
- Accepts `{"data": [[10 floats], ...]}` (rows in training column order) or
  `{"data": [{"age": .., "sex": .., ...}, ...]}` (records with column names, any order).
- A wrong feature count, unknown/missing columns or a NaN/Infinity value (JSON parsers
  accept them) answer 400 with a message naming the expected columns or the bad cell
  (azmlinfsrv would turn a raised exception into an opaque 500).
- Predicts on a float ndarray: no per-request pandas DataFrame (about 0.5 ms each) and no
  sklearn "X does not have valid feature names" warning on every call.
- The model is read from the MLflow model folder with cloudpickle directly, so workers do
  not import mlflow (about 2.5 s) and a deployment becomes ready quickly.
- Production data: with `data_collector.collections.model_inputs/model_outputs` enabled in
  the deployment YAML, the inputs and predictions of each request are logged with
  azureml-ai-monitoring's Collector (sharing one correlation id), for model monitoring.
  Collection is best effort: its errors are counted and logged, never raised to the caller,
  and without a data_collector no DataFrame is built at all.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from azureml_inference_server_http.api.aml_response import AMLResponse
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

logger = logging.getLogger(__name__)

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
# One raw (unscaled) row of the diabetes data set: documents the payload in /swagger.json.
SAMPLE_ROW = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]

model: Any = None
columns: list[str] = COLUMNS
inputs_collector: Any = None
outputs_collector: Any = None
collect_errors = 0
# The collected DataFrames' column labels, built once: a DataFrame given a ready pandas
# Index costs ~13 us, one given a list (or a dict of columns) 50-70 us, per request.
input_labels: Any = None
output_labels: Any = None


def find_mlflow_model(root: Path) -> Path:
    """The folder holding `MLmodel` under AZUREML_MODEL_DIR.

    Azure mounts a model registered from a folder as `<AZUREML_MODEL_DIR>/<folder-name>/`,
    while a model downloaded from the MLflow registry sits at the root: accept both.
    """
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLmodel file under {root}")
    return found[0]


def load_sklearn_model(model_path: Path) -> Any:
    """Load the sklearn flavour's pickle named in MLmodel (pickle or cloudpickle format)."""
    import cloudpickle
    import yaml

    meta = yaml.safe_load((model_path / "MLmodel").read_text())
    flavor = meta["flavors"]["sklearn"]
    fmt = flavor.get("serialization_format", "cloudpickle")
    if fmt not in ("pickle", "cloudpickle"):
        raise ValueError(f"unsupported sklearn serialization_format {fmt!r}; save with cloudpickle")
    with open(model_path / flavor["pickled_model"], "rb") as f:
        return cloudpickle.load(f)


def init() -> None:
    global model, columns
    model_path = find_mlflow_model(Path(os.environ["AZUREML_MODEL_DIR"]))
    model = load_sklearn_model(model_path)
    columns = [str(c) for c in getattr(model, "feature_names_in_", COLUMNS)]
    # We order columns ourselves (below), so the fitted-on-a-DataFrame check adds nothing.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    # to_matrix() already checks shape, type and finiteness, so let sklearn skip its own
    # checks (about 20 us of a single-row predict). azmlinfsrv's sync workers call init() and
    # run() on the same thread, which is where sklearn keeps this setting.
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    logger.info("Loaded model from %s expecting columns %s", model_path, columns)
    global inputs_collector, outputs_collector, input_labels, output_labels
    inputs_collector = _collector("model_inputs")
    outputs_collector = _collector("model_outputs")
    if inputs_collector is not None:
        import pandas as pd

        input_labels, output_labels = pd.Index(columns), pd.Index(["predicted"])


def _collector(name: str) -> Any:
    """A Collector for `name`, or None when the deployment does not collect it."""
    try:
        from azureml.ai.monitoring import Collector
    except ImportError:
        return None
    problems: list[Exception] = []

    def on_error(exc: Exception) -> None:  # never raises: collection is best effort
        if collector is None:  # the constructor reports "not enabled" at once
            problems.append(exc)
        else:
            _collect_failed(exc)

    collector = None
    collector = Collector(name=name, on_error=on_error)
    return None if problems else collector


def _collect_failed(exc: Exception) -> None:
    global collect_errors
    collect_errors += 1
    if collect_errors == 1 or collect_errors % 1000 == 0:
        logger.warning("data collection dropped %d payload(s): %s", collect_errors, exc)


def _collect(x: np.ndarray, y: np.ndarray) -> None:
    import pandas as pd

    try:
        context = inputs_collector.collect(pd.DataFrame(x, columns=input_labels))
        if outputs_collector is not None:
            outputs_collector.collect(pd.DataFrame(y[:, None], columns=output_labels), context)
    except Exception as exc:  # noqa: BLE001 - collection never fails a scoring request
        _collect_failed(exc)


def _bad_request(message: str) -> AMLResponse:
    return AMLResponse({"message": message}, 400, json_str=True)


def to_matrix(data: Any) -> np.ndarray | str:
    """Rows or records as a float matrix in training column order, or an error message."""
    if not isinstance(data, list) or not data:
        return f"'data' must be a non-empty list of rows; expected columns {columns}"
    if all(isinstance(r, dict) for r in data):
        missing = [c for c in columns if c not in data[0]]
        extra = [k for k in data[0] if k not in columns]
        if missing or extra:
            return f"records must have exactly the columns {columns}; missing {missing}, unknown {extra}"
        try:
            x = np.array([[r[c] for c in columns] for r in data], dtype=float)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            return f"records must map each of {columns} to a number ({exc})"
    else:
        try:
            x = np.asarray(data, dtype=float)
        except (TypeError, ValueError, OverflowError):
            return f"rows must be lists of {len(columns)} numbers: {columns}"
        if x.ndim != 2 or x.shape[1] != len(columns):
            got = x.shape[1] if x.ndim == 2 else "ragged"
            return f"expected {len(columns)} features per row {columns}, got {got}"
    if not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0]
        return f"row {row}: {columns[col]!r} must be a finite number, got {x[row, col]}"
    return x


@input_schema("data", StandardPythonParameterType([SAMPLE_ROW]))
@output_schema(StandardPythonParameterType([152.1]))
def _run(data: Any) -> Any:
    x = to_matrix(data)
    if isinstance(x, str):
        return _bad_request(x)
    y = model.predict(x)
    if not np.isfinite(y).all():  # NaN/Infinity are not JSON: inputs far out of range
        row = int(np.argwhere(~np.isfinite(y))[0][0])
        return _bad_request(
            f"row {row}: the prediction is not a finite number (inputs out of range)"
        )
    if inputs_collector is not None:
        _collect(x, y)
    return y.tolist()


def _schema_errors_are_400(decorated: Any) -> Any:
    """inference-schema checks the type of `data` before _run and raises ValueError, which
    azmlinfsrv answers with an opaque 500; the client's mistake gets a 400 instead. A closure,
    so inference-schema (and azmlinfsrv's swagger) still find the decorated function."""

    def run(data: Any) -> Any:
        try:
            return decorated(data)
        except ValueError as exc:
            return _bad_request(f"'data' must be a list of rows {columns}: {exc}")

    return run


run = _schema_errors_are_400(_run)


if __name__ == "__main__":  # local smoke test: python score.py <model-dir>
    import sys

    os.environ["AZUREML_MODEL_DIR"] = sys.argv[1]
    init()
    print(json.dumps(run([SAMPLE_ROW])))
