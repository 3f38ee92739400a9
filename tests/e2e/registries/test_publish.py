"""`make publish`'s script: the training pipeline's components and their environment go to the
registry (the deploy component, whose environment is inline, stays local), and prod retrains
with pipelines/train.yml whose components are the registry's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_support import Project
from online_support import REPO

BIN = Path(sys.executable).parent
REG = "azureml://registries/diabetes-registry"


def _publish(project: Project, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(REPO / "scripts" / "publish.sh"),
            "registries/registry.yml",
            "pipelines/train.yml",
            *extra,
        ],
        cwd=REPO,
        env={  # prod only when the test names it, whatever the caller's environment holds
            **{k: v for k, v in project.env.items() if not k.startswith("PROD_")},
            "AML": str(BIN / "amlocal"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=1500,
    )


def test_publish_then_prod_retrains_from_the_registry(tmp_path: Path) -> None:
    project = Project(tmp_path)
    r = _publish(project)
    assert r.returncode == 0, r.stderr
    sets = r.stdout.split()
    assert sets[1::2] == [
        f"jobs.{job}.component={REG}/components/diabetes_{name}/versions/1"
        for job, name in (
            ("prep", "prep_data"),
            ("train", "train_model"),
            ("evaluate", "evaluate_model"),
            ("register", "register_model"),
        )
    ]
    assert "diabetes_deploy_model keeps its inline environment" in r.stderr
    env = f"{REG}/environments/diabetes-train/versions/1"
    comp = project.json(
        "component",
        "show",
        "-n",
        "diabetes_train_model",
        "-v",
        "1",
        "--registry-name",
        "diabetes-registry",
    )
    assert comp["environment"] == env
    # a second publish changes nothing (registry versions are immutable) and says so
    r = _publish(project, "--set", "inputs.deploy=false", PROD_WORKSPACE="prod")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "already holds component diabetes_train_model:1" in r.stderr
    # ... and with PROD_WORKSPACE it retrained in prod, from the registry's components
    jobs = project.json(
        "job", "list", "-w", "prod", "--query", "[?type=='pipeline'].[name, status]"
    )
    assert len(jobs) == 1 and jobs[0][1] == "Completed", jobs
    steps = {
        s["display_name"]: s
        for s in project.json("job", "list", "-w", "prod", "--parent-job-name", jobs[0][0])
    }
    assert steps["train"]["environment"] == env, steps["train"]
    assert steps["train"]["status"] == "Completed"
    assert project.json("model", "list", "-w", "prod", "--query", "[].name") == ["diabetes-model"]
    assert project.json("component", "list", "-w", "prod") == []
