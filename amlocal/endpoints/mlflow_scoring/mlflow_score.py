"""Scoring script for MLflow no-code deployments (a model of type mlflow_model, no
`code_configuration`), standing in for the one Azure ML generates.

Like Azure's, it loads the model as an MLflow pyfunc (signature enforced) and takes the
payload wrapped in `input_data`: `{"columns", "index", "data"}` for a split-oriented
DataFrame, a list for a tensor, or `{"name": [...]}` for named tensors, plus optional
`params`. Records orientation and CSV are not accepted, as on Azure online endpoints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from azureml_inference_server_http.api.aml_response import AMLResponse

model: Any = None


def _model_path(root: Path) -> Path:
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLmodel file under {root}")
    return found[0]


def init() -> None:
    global model
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(_model_path(Path(os.environ["AZUREML_MODEL_DIR"]))))


def _error(message: str) -> AMLResponse:
    return AMLResponse({"message": message}, 400, json_str=True)


def _parse(payload: Any) -> Any:
    import numpy as np
    import pandas as pd

    data = payload["input_data"]
    if isinstance(data, dict) and "data" in data and ("columns" in data or "index" in data):
        return pd.DataFrame(data["data"], columns=data.get("columns"), index=data.get("index"))
    if isinstance(data, dict):
        return {k: np.asarray(v) for k, v in data.items()}
    if isinstance(data, list):
        return np.asarray(data)
    raise ValueError("'input_data' must be a split-oriented DataFrame, a list or a dict")


def run(raw_data: str) -> Any:
    try:
        payload = json.loads(raw_data)
    except ValueError as exc:
        return _error(f"request body is not valid JSON: {exc}")
    if not isinstance(payload, dict) or "input_data" not in payload:
        return _error(
            "expected a JSON object with 'input_data' "
            '(for example {"input_data": {"columns": [...], "index": [...], "data": [[...]]}})'
        )
    try:
        data = _parse(payload)
    except (ValueError, TypeError) as exc:
        return _error(f"could not read 'input_data': {exc}")
    try:
        result = model.predict(data, params=payload.get("params"))
    except Exception as exc:  # MLflow's schema enforcement errors: the caller's mistake
        return _error(str(exc))
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        return result.to_dict(orient="records")
    return result.tolist() if hasattr(result, "tolist") else result
