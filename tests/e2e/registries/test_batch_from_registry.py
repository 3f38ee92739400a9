"""A batch deployment in prod whose model is the registry's (`azureml://registries/.../labels/
latest`), scored with the repository's scripts/batch-deploy.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from cli_support import Project
from online_support import REPO, fit_model, save_model

BIN = Path(sys.executable).parent
CONFIG = REPO / "endpoints" / "batch" / "diabetes"


def test_batch_deployment_scores_with_the_registry_model(tmp_path: Path) -> None:
    project = Project(tmp_path)
    model, X = fit_model(alpha=0.7)
    save_model(model, X, tmp_path / "model")
    project.write("registry.yml", (REPO / "registries" / "registry.yml").read_text())
    project.run("registry", "create", "-f", "registry.yml", "-o", "none")
    project.run(
        "model", "create", "-n", "diabetes-model", "-v", "2", "-t", "mlflow_model",
        "-p", str(tmp_path / "model"), "--registry-name", "diabetes-registry", "-o", "none",
    )  # fmt: skip
    project.run("workspace", "create", "-n", "prod", "-o", "none")
    project.run(
        "environment",
        "create",
        "-f",
        str(REPO / "environments" / "score.yml"),
        "-w",
        "prod",
        "-o",
        "none",
    )
    spec = yaml.safe_load((CONFIG / "deployment.yml").read_text())
    spec["model"] = "azureml://registries/diabetes-registry/models/diabetes-model/labels/latest"
    spec["code_configuration"]["code"] = str(REPO / "src" / "batch_score")
    dep = tmp_path / "deployment.yml"
    dep.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = subprocess.run(
        [
            str(REPO / "scripts" / "batch-deploy.sh"),
            "reg-batch-ep",
            str(CONFIG),
            str(dep),
            str(REPO / "data" / "diabetes-batch"),
        ],
        cwd=REPO,
        env={
            **project.env,
            "AML": str(BIN / "amlocal"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "WORKSPACE": "prod",
            "OUTPUT_DIR": str(tmp_path / "out"),
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    shown = project.json(
        "batch-deployment", "show", "-n", "score-script", "-e", "reg-batch-ep", "-w", "prod"
    )
    assert (
        shown["model"] == "azureml://registries/diabetes-registry/models/diabetes-model/versions/2"
    )
    predictions = next((tmp_path / "out").rglob("predictions.csv")).read_text().splitlines()
    rows = [
        ln
        for f in sorted((REPO / "data" / "diabetes-batch").glob("*.csv"))
        for ln in f.read_text().splitlines()[1:]
        if ln
    ]
    assert len(predictions) == len(rows)
    assert project.json("model", "list", "-w", "prod") == []
