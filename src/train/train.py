"""Entry point of the train component: fit Ridge, log params/metrics, save the mlflow_model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlflow
from train_lib import (
    TASKS,
    fit,
    link_model_to_run,
    load_split,
    parse_bool,
    save_model,
    task_metrics,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The component's command line (components/*.yml must produce one this accepts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared_data", type=Path, required=True, help="prep output folder")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--fit_intercept", type=parse_bool, default=True)
    parser.add_argument("--task", default="regression", help=" or ".join(TASKS))
    parser.add_argument("--model", type=Path, required=True, help="output mlflow_model folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    x, y = load_split(args.prepared_data, "train.csv")
    model = fit(x, y, args.alpha, args.fit_intercept, args.task)
    metrics = task_metrics(args.task, y, model.predict(x))
    save_model(model, x, args.model)

    # The platform already started this step's MLflow run (MLFLOW_RUN_ID): just log to it.
    data_sha256 = json.loads((args.prepared_data / "metadata.json").read_text())["data_sha256"]
    mlflow.log_params(
        {
            "model_type": type(model).__name__,
            "task": args.task,
            "alpha": args.alpha,
            "fit_intercept": args.fit_intercept,
            "train_rows": len(x),
            "data_sha256": data_sha256,
        }
    )
    mlflow.log_metrics({f"train_{name}": value for name, value in metrics.items()})
    link_model_to_run(args.model)
    shown = " ".join(f"{name}={value:.3f}" for name, value in metrics.items())
    print(f"train: {type(model).__name__} alpha={args.alpha} train {shown}")


if __name__ == "__main__":
    main()
