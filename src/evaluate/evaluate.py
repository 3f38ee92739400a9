"""Entry point of the evaluate component: metrics, plots, champion comparison, decision."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless compute: never try a GUI backend

import mlflow  # noqa: E402
from evaluate_lib import evaluate, parse_bool, write_decision  # noqa: E402
from mlflow import MlflowClient  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The component's command line (components/*.yml must produce one this accepts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="challenger mlflow_model")
    parser.add_argument("--prepared_data", type=Path, required=True, help="prep output folder")
    parser.add_argument("--model_name", required=True, help="registered model to compare with")
    parser.add_argument("--enable_evaluation", type=parse_bool, default=True)
    # Checked by evaluate_lib (regression | classification), which names the valid values.
    parser.add_argument("--task", default="regression", help="regression or classification")
    parser.add_argument("--decision", type=Path, required=True, help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    result = evaluate(
        args.model,
        args.prepared_data,
        args.model_name,
        args.enable_evaluation,
        MlflowClient(),
        task=args.task,
    )
    decision = result.decision
    write_decision(decision, args.decision)

    # The platform already started this step's MLflow run (MLFLOW_RUN_ID): just log to it.
    mlflow.log_params({"model_name": args.model_name, "enable_evaluation": args.enable_evaluation})
    mlflow.log_metrics({f"test_{k}": v for k, v in decision["challenger"].items()})
    if decision["champion"]:
        champion_metrics = {
            k: v for k, v in decision["champion"].items() if k in decision["challenger"]
        }
        mlflow.log_metrics({f"champion_test_{k}": v for k, v in champion_metrics.items()})
    mlflow.log_metric("promote", int(decision["promote"]))
    for name, figure in result.figures.items():
        mlflow.log_figure(figure, f"plots/{name}")
    mlflow.log_dict(decision, "decision.json")
    if result.details:
        mlflow.log_dict(result.details, "per_class_metrics.json")
        for label, row in result.details.get("per_class", {}).items():
            mlflow.log_metrics(
                {f"precision_{label}": row["precision"], f"recall_{label}": row["recall"]}
            )
    print(f"evaluate: promote={decision['promote']}")
    for reason in decision["reasons"]:
        print(f"  - {reason}")


if __name__ == "__main__":
    main()
