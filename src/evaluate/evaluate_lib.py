"""Score the challenger, compare it with the registered champion, decide on promotion.

One gate for every task: `task="regression"` (diabetes: rmse, lower is better) or
`task="classification"` (digits: accuracy, higher is better, plus macro F1, a confusion
matrix and per-class precision/recall). Only the metrics and plots differ; the champion
lookup, the comparison rule and the decision file are shared.

Platform-independent: returns results instead of logging them, so every rule can be
unit-tested; evaluate.py is the thin entry point that logs and writes the decision output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
)

PRIMARY_METRIC = "rmse"  # lower is better
# task -> (primary metric, higher is better)
PRIMARY = {"regression": (PRIMARY_METRIC, False), "classification": ("accuracy", True)}
CHAMPION_ALIAS = "champion"
# Mirror of the alias as a model-version tag, for registries without aliases (Azure ML's
# MLflow registry does not document them: see docs/notes-registry.md). register_lib sets both.
CHAMPION_TAG = "champion"
DECISION_FILE = "decision.json"


@dataclass
class Evaluation:
    """Everything the entry point logs or writes."""

    decision: dict[str, Any]
    figures: dict[str, Figure] = field(default_factory=dict)
    # Per-class numbers (classification): logged as a JSON artifact, kept out of the decision's
    # flat challenger metrics, which register turns into version tags.
    details: dict[str, Any] = field(default_factory=dict)


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


def load_test(prepared_dir: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The test split written by prep, features in prep's order and as float64 (as in train)."""
    metadata = json.loads((prepared_dir / "metadata.json").read_text())
    frame = pd.read_csv(prepared_dir / "test.csv")
    return frame[metadata["features"]].astype("float64"), frame[metadata["target"]]


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """rmse (primary, lower is better), mae and r2; same definitions as train_lib."""
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def find_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version holding the champion alias, or the newest one tagged champion=true.

    The alias is tried first (MLflow's own mechanism, used on local SQLite stores); any
    failure, whether no model, no alias or a registry that lacks the alias API, falls back to
    the tag, which register_lib maintains alongside the alias.
    """
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        pass
    versions = client.search_model_versions(f"name='{name}'")
    tagged = [v for v in versions if (v.tags or {}).get(CHAMPION_TAG) == "true"]
    return max(tagged, key=lambda v: int(v.version), default=None)


def predict(model_uri: str, x: pd.DataFrame) -> np.ndarray:
    """Predict with any MLflow model (pyfunc), from a local folder or a models:/ URI."""
    return np.asarray(mlflow.pyfunc.load_model(model_uri).predict(x)).ravel()


def decide(
    challenger: dict[str, float] | None,
    champion: dict[str, Any] | None,
    enable_evaluation: bool,
    task: str = "regression",
) -> dict[str, Any]:
    """The promotion rule, and nothing else.

    Promote iff evaluation is disabled, or there is no champion, or the challenger is strictly
    better on the task's primary metric. A tie keeps the champion: re-registering an
    equivalent model only churns versions and deployments.
    """
    primary, higher_is_better = PRIMARY[task]
    decision: dict[str, Any] = {
        "promote": False,
        "reasons": [],
        "primary_metric": primary,
        "evaluation_enabled": enable_evaluation,
        "challenger": challenger or {},
        "champion": champion,
    }
    reasons = decision["reasons"]
    if not enable_evaluation:
        decision["promote"] = True
        reasons.append("evaluation disabled (enable_evaluation=false): promoted without a gate")
        return decision
    if challenger is None:
        raise ValueError("evaluation is enabled but the challenger has no metrics")
    if champion is None:
        decision["promote"] = True
        reasons.append("no champion registered yet: the challenger becomes the first one")
        return decision
    new, old = challenger[primary], champion[primary]
    versus = f"challenger {primary} {new:.6g} vs champion v{champion['version']} {old:.6g}"
    better, worse = ("higher", "lower") if higher_is_better else ("lower", "higher")
    if (new > old) if higher_is_better else (new < old):
        decision["promote"] = True
        reasons.append(f"{versus}: challenger is better ({better})")
    elif new == old:
        reasons.append(f"{versus}: equal, the champion is kept")
    else:
        reasons.append(f"{versus}: challenger is worse ({worse})")
    for name in sorted(set(challenger) & set(champion) - {primary}):
        reasons.append(f"(info) {name}: challenger {challenger[name]:.6g} vs {champion[name]:.6g}")
    return decision


def plot_predicted_vs_actual(y_true: Any, y_pred: Any, title: str) -> Figure:
    """Scatter of predictions against truth with the y = x line (a perfect model)."""
    fig = Figure(figsize=(5, 5))  # a bare Figure needs no pyplot/GUI backend (Agg on save)
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=12, alpha=0.7)
    lims = [min(np.min(y_true), np.min(y_pred)), max(np.max(y_true), np.max(y_pred))]
    ax.plot(lims, lims, "k--", linewidth=1, label="perfect")
    ax.set(xlabel="actual", ylabel="predicted", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_residuals(y_true: Any, y_pred: Any, title: str) -> Figure:
    """Residuals (actual - predicted) against predictions: structure here means bias."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    residuals = np.asarray(y_true) - np.asarray(y_pred)
    ax.scatter(y_pred, residuals, s=12, alpha=0.7)
    ax.axhline(0.0, color="k", linestyle="--", linewidth=1)
    ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title=title)
    fig.tight_layout()
    return fig


def classification_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """accuracy (primary, higher is better) and macro-averaged F1, precision and recall."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "macro_precision": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def per_class(y_true: Any, y_pred: Any) -> dict[str, dict[str, float]]:
    """Precision, recall and support of every class (which digits the model confuses)."""
    labels = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        str(c): {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(labels)
    }


def plot_confusion_matrix(y_true: Any, y_pred: Any, title: str) -> Figure:
    """Counts of true class (rows) against predicted class (columns)."""
    labels = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(len(labels)), [str(c) for c in labels])
    ax.set_yticks(range(len(labels)), [str(c) for c in labels])
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def plot_per_class(details: dict[str, dict[str, float]], title: str) -> Figure:
    """Precision and recall side by side for each class."""
    classes = list(details)
    xs = np.arange(len(classes))
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.bar(xs - 0.2, [details[c]["precision"] for c in classes], 0.4, label="precision")
    ax.bar(xs + 0.2, [details[c]["recall"] for c in classes], 0.4, label="recall")
    ax.set_xticks(xs, classes)
    ax.set(xlabel="class", ylim=(0, 1.05), title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def evaluate(
    model_dir: Path,
    prepared_dir: Path,
    model_name: str,
    enable_evaluation: bool,
    client: MlflowClient,
    task: str = "regression",
) -> Evaluation:
    """Score challenger and champion on the same test split and decide."""
    if task not in PRIMARY:
        raise ValueError(f"unknown task '{task}' (regression or classification)")
    # The challenger is scored even with the gate off: no comparison then, but the version
    # register makes of it still carries its test_* metrics like any other.
    x, y = load_test(prepared_dir)
    if task == "classification":
        return _evaluate_classifier(model_dir, x, y, model_name, client, enable_evaluation)
    predictions = predict(str(model_dir), x)
    challenger = regression_metrics(y, predictions)
    figures = {
        "predicted_vs_actual.png": plot_predicted_vs_actual(y, predictions, "challenger"),
        "residuals.png": plot_residuals(y, predictions, "challenger residuals"),
    }
    if not enable_evaluation:
        return Evaluation(decide(challenger, None, enable_evaluation=False), figures)

    champion = None
    version = find_champion(client, model_name)
    if version is not None:
        champion_predictions = predict(f"models:/{model_name}/{version.version}", x)
        champion = {"version": str(version.version), "run_id": version.run_id}
        champion.update(regression_metrics(y, champion_predictions))
    return Evaluation(decide(challenger, champion, enable_evaluation=True), figures)


def _evaluate_classifier(
    model_dir: Path,
    x: pd.DataFrame,
    y: pd.Series,
    model_name: str,
    client: MlflowClient,
    enable_evaluation: bool = True,
) -> Evaluation:
    predictions = predict(str(model_dir), x)
    challenger = classification_metrics(y, predictions)
    details = {"per_class": per_class(y, predictions)}
    figures = {
        "confusion_matrix.png": plot_confusion_matrix(y, predictions, "challenger"),
        "per_class_precision_recall.png": plot_per_class(details["per_class"], "challenger"),
    }
    if not enable_evaluation:
        gate_off = decide(challenger, None, enable_evaluation=False, task="classification")
        return Evaluation(gate_off, figures, details)
    champion = None
    version = find_champion(client, model_name)
    if version is not None:
        champion_predictions = predict(f"models:/{model_name}/{version.version}", x)
        champion = {"version": str(version.version), "run_id": version.run_id}
        champion.update(classification_metrics(y, champion_predictions))
    decision = decide(challenger, champion, enable_evaluation=True, task="classification")
    return Evaluation(decision, figures, details)


def write_decision(decision: dict[str, Any], output_dir: Path) -> Path:
    """decision.json in the decision output folder, read by the register step."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / DECISION_FILE
    path.write_text(json.dumps(decision, indent=2) + "\n")
    return path
