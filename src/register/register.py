"""Entry point of the register component: register the model only when evaluate promoted it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from register_lib import read_json, register, write_info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The component's command line (components/*.yml must produce one this accepts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="challenger mlflow_model")
    parser.add_argument("--decision", type=Path, required=True, help="evaluate's decision folder")
    parser.add_argument("--prepared_data", type=Path, required=True, help="prep output folder")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--registration", type=Path, required=True, help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    decision = read_json(args.decision, "decision.json")
    metadata = read_json(args.prepared_data, "metadata.json")
    # The platform started this step's run and exported its id; we log into it, never start one.
    run_id = os.environ["MLFLOW_RUN_ID"]
    info = register(MlflowClient(), run_id, args.model, decision, metadata, args.model_name)
    write_info(info, args.registration)

    mlflow.log_params({"model_name": args.model_name, "registered": info["registered"]})
    if info["registered"]:
        mlflow.log_param("registered_version", info["version"])
        print(f"register: registered {info['name']} version {info['version']} as champion")
    else:
        print(f"register: not registered: {info['reason']}")


if __name__ == "__main__":
    main()
