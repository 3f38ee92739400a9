"""Entry point of the prep component: split the data and log what was split."""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
from prep_lib import prepare


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The component's command line (components/*.yml must produce one this accepts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="diabetes CSV (uri_file)")
    parser.add_argument("--test_size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--prepared_data", type=Path, required=True, help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    metadata = prepare(args.data, args.prepared_data, args.test_size, args.seed)
    # The platform already started this step's MLflow run (MLFLOW_RUN_ID): just log to it.
    mlflow.log_params(
        {"test_size": args.test_size, "seed": args.seed, "data_sha256": metadata["data_sha256"]}
    )
    mlflow.log_metrics({"train_rows": metadata["train_rows"], "test_rows": metadata["test_rows"]})
    print(
        f"prep: {metadata['train_rows']} train / {metadata['test_rows']} test rows, "
        f"data sha256 {metadata['data_sha256'][:12]}"
    )


if __name__ == "__main__":
    main()
