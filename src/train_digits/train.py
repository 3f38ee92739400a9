"""Entry point of the digits trial: cross-validate one configuration, then fit and save it.

Logs `val_accuracy` once per fold (the sweep's primary metric and its intervals).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
from train_lib import FAMILIES, build, cross_validate, load_split, save_model, used_params


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The component's command line (components/train_digits.yml must produce one this accepts)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prepared_data", type=Path, required=True)
    p.add_argument("--model_family", choices=FAMILIES, required=True)
    p.add_argument("--C", type=float, default=1.0, help="logistic_regression, svc")
    # float first: sweeps may hand over "5.0" for integer-valued distributions
    p.add_argument("--n_neighbors", type=lambda s: int(float(s)), default=5, help="knn")
    p.add_argument("--cv_folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", type=Path, required=True, help="output folder (mlflow_model)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    x, y = load_split(args.prepared_data, "train.csv")
    model = build(args.model_family, args.C, args.n_neighbors, args.seed)
    mlflow.log_params(used_params(args.model_family, args.C, args.n_neighbors))

    def report(fold: int, running: float) -> None:
        mlflow.log_metric("val_accuracy", running, step=fold)
        print(f"fold {fold}: running val_accuracy {running:.4f}", flush=True)

    accuracy = cross_validate(model, x, y, args.cv_folds, args.seed, report)
    model.fit(x, y)
    save_model(model, x, args.model)
    print(f"train: {args.model_family} val_accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
