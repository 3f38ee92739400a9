"""Fit the diabetes Ridge model and save it as an MLflow model.

Platform-independent: no argparse, no run management. train.py is the thin entry point.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

TASKS = ("regression", "classification")

# Explicit requirements instead of MLflow's inference, which imports the model in a
# subprocess (~8 s per save). Keep equal to pyproject.toml (tests/e2e/project/test_diabetes_train.py).
# cloudpickle is pinned to the version that actually pickled the model.
MODEL_PIP_REQUIREMENTS = [
    "mlflow==3.15.0",
    "scikit-learn==1.9.1",
    "pandas==2.3.3",
    "numpy==2.4.6",
    f"cloudpickle=={version('cloudpickle')}",
]


def parse_bool(value: str | bool) -> bool:
    """Azure ML substitutes boolean inputs as text ("True"/"true"); accept the usual spellings."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def load_split(prepared_dir: Path, file_name: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features (named columns, in prep's order) and target of one split written by prep.

    Features are float64 even where the CSV holds integers (age, sex, bp...): the signature
    then declares doubles, so a client sending 59.0 is not rejected by schema enforcement.
    """
    metadata = json.loads((prepared_dir / "metadata.json").read_text())
    frame = pd.read_csv(prepared_dir / file_name)
    return frame[metadata["features"]].astype("float64"), frame[metadata["target"]]


def fit(
    x: pd.DataFrame,
    y: pd.Series,
    alpha: float,
    fit_intercept: bool = True,
    task: str = "regression",
) -> BaseEstimator:
    """Ridge (regression) or L2 logistic regression, C = 1/alpha (classification), on raw
    (unscaled) features.

    Fitted on a DataFrame on purpose: the model remembers `feature_names_in_`, so scoring with
    the same named columns is warning-free and a request with wrong columns fails loudly.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if task == "classification":
        c = 1.0 / alpha if alpha > 0 else 1e12
        return LogisticRegression(C=c, fit_intercept=fit_intercept, max_iter=5000).fit(x, y)
    if task != "regression":
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    return Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(x, y)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """rmse (primary, lower is better), mae and r2."""
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def classification_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """accuracy (primary, higher is better) and macro F1; same definitions as evaluate_lib."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def task_metrics(task: str, y_true: Any, y_pred: Any) -> dict[str, float]:
    """The task's training metrics (logged as train_<name>)."""
    if task == "classification":
        return classification_metrics(y_true, y_pred)
    return regression_metrics(y_true, y_pred)


def link_model_to_run(model_dir: Path, name: str = "model") -> str | None:
    """Attach the saved model folder to the active run as an MLflow logged model, so the
    train run shows, and links to, the model it produced (register logs and registers its
    own copy). Best effort: a tracking server without logged models only loses the link."""
    run = mlflow.active_run()
    try:
        logged = mlflow.initialize_logged_model(
            name=name, source_run_id=run.info.run_id if run else None
        )
        mlflow.MlflowClient().log_model_artifacts(logged.model_id, str(model_dir))
        mlflow.finalize_logged_model(logged.model_id, "READY")
    except (MlflowException, OSError) as exc:
        print(f"train: the model is not linked to this run: {exc}")
        return None
    return str(logged.model_id)


def save_model(model: BaseEstimator, x_example: pd.DataFrame, output_dir: Path) -> None:
    """Save as an MLflow model with a signature and an input example.

    output_dir may exist (the platform creates output folders) but must be empty.
    """
    example = x_example.head(5)
    signature = infer_signature(example, model.predict(example))
    mlflow.sklearn.save_model(
        model,
        str(output_dir),
        # MLflow 3 defaults sklearn to skops, which Azure ML's MLflow runtime may not load.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        signature=signature,
        input_example=example,
        pip_requirements=MODEL_PIP_REQUIREMENTS,
    )
