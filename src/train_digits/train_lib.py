"""Fit one model family on the digits features, with cross-validation that reports as it goes.

Each fold logs the running mean validation accuracy: one value per fold is one *interval*
for the sweep's early-termination policy, so a clearly worse configuration is stopped after
a fold or two instead of running to the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

FAMILIES = ("logistic_regression", "knn", "svc", "random_forest")
# Same pins as the diabetes model (and pyproject.toml), so the served model loads unchanged.
MODEL_PIP_REQUIREMENTS = [
    "mlflow==3.15.0",
    "scikit-learn==1.9.1",
    "pandas==2.3.3",
    "numpy==2.4.6",
    f"cloudpickle=={version('cloudpickle')}",
]


# The hyperparameters each family reads (the others of the sweep's product are ignored).
USES = {
    "logistic_regression": ("C",),
    "knn": ("n_neighbors",),
    "svc": ("C",),
    "random_forest": (),
}


def used_params(family: str, c: float, n_neighbors: int) -> dict[str, object]:
    """The params a trial logs: its family and only what that family uses, so the sweep's
    plots and run names do not show a knn trial by `C`."""
    values: dict[str, object] = {"C": c, "n_neighbors": n_neighbors}
    return {"model_family": family, **{k: values[k] for k in USES.get(family, ())}}


def build(family: str, c: float, n_neighbors: int, seed: int) -> ClassifierMixin:
    """A classifier with predict_proba (the endpoint returns class probabilities).

    Only the hyperparameters of the chosen family matter; a sweep's search space is a product,
    so the others are simply ignored by that trial.
    """
    if family == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    if family == "knn":
        return KNeighborsClassifier(n_neighbors=int(n_neighbors), weights="distance")
    if family == "svc":
        return make_pipeline(
            StandardScaler(), SVC(C=c, gamma="scale", probability=True, random_state=seed)
        )
    if family == "random_forest":
        return RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    raise ValueError(f"unknown model_family '{family}' (choose from {', '.join(FAMILIES)})")


def load_split(prepared_dir: Path, file_name: str) -> tuple[pd.DataFrame, pd.Series]:
    metadata = json.loads((prepared_dir / "metadata.json").read_text())
    frame = pd.read_csv(prepared_dir / file_name)
    return frame[metadata["features"]].astype("float64"), frame[metadata["target"]]


def cross_validate(
    model: ClassifierMixin,
    x: pd.DataFrame,
    y: pd.Series,
    folds: int,
    seed: int,
    report: Callable[[int, float], None],
) -> float:
    """Stratified k-fold; `report(fold, running_mean_accuracy)` after every fold."""
    scores: list[float] = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (tr, va) in enumerate(splitter.split(x, y)):
        fitted = clone(model).fit(x.iloc[tr], y.iloc[tr])
        scores.append(float(fitted.score(x.iloc[va], y.iloc[va])))
        report(fold, float(np.mean(scores)))
    return float(np.mean(scores))


def save_model(model: ClassifierMixin, x_example: pd.DataFrame, output_dir: Path) -> None:
    """MLflow model (cloudpickle, explicit requirements), like the diabetes train step."""
    example = x_example.head(3)
    mlflow.sklearn.save_model(
        model,
        str(output_dir),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        pip_requirements=MODEL_PIP_REQUIREMENTS,
    )
