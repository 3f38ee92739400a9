"""Entry point of the digits prep component: decode images -> features, stratified split."""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
from prep_lib import prepare


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The component's command line (components/prep_digits.yml must produce one this accepts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=Path, required=True, help="folder of <class>/ folders")
    parser.add_argument("--test_size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--prepared_data", type=Path, required=True, help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    metadata = prepare(args.images, args.prepared_data, args.test_size, args.seed)
    mlflow.log_params({"test_size": args.test_size, "seed": args.seed})
    mlflow.log_metrics({"train_rows": metadata["train_rows"], "test_rows": metadata["test_rows"]})
    mlflow.set_tag("data_sha256", metadata["data_sha256"])
    print(
        f"prep: {metadata['rows']} images -> {metadata['train_rows']} train, "
        f"{metadata['test_rows']} test ({len(metadata['classes'])} classes)"
    )


if __name__ == "__main__":
    main()
