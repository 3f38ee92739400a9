"""The repository's promotion flow, offline: dev's champion shared to the registry and
released blue/green in prod from the registry reference (scripts/promote.sh, which
`make promote` runs), answering exactly as the same model does in dev."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_support import Project
from online_support import REPO, fit_model, kill_leftovers, save_model

BIN = Path(sys.executable).parent
CONFIG = REPO / "endpoints" / "online" / "diabetes"


def _script(project: Project, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / args[0]), *args[1:]],
        cwd=REPO,
        env={  # prod only when the test names it, whatever the caller's environment holds
            **{k: v for k, v in project.env.items() if not k.startswith("PROD_")},
            "AML": str(BIN / "amlocal"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )


def _invoke(project: Project, endpoint: str, *ws: str) -> list[float]:
    r = project.run(
        "online-endpoint", "invoke", "-n", endpoint, "-r", str(CONFIG / "sample-request.json"), *ws
    )
    body = json.loads(r.stdout)
    return json.loads(body) if isinstance(body, str) else body


def test_promote_shares_the_champion_and_prod_serves_it_from_the_registry(tmp_path: Path) -> None:
    project = Project(tmp_path)
    model, X = fit_model(alpha=0.5)
    save_model(model, X, tmp_path / "model")
    try:
        # dev (the default workspace): the champion, as the pipeline's register step tags it
        project.run(
            "environment", "create", "-f", str(REPO / "environments" / "score.yml"), "-o", "none"
        )
        project.run(
            "model", "create", "-n", "diabetes-model", "-v", "1", "-t", "mlflow_model",
            "-p", str(tmp_path / "model"), "--tags", "champion=true", "test_rmse=53.1", "-o", "none",
        )  # fmt: skip
        r = _script(
            project,
            "blue-green.sh",
            "deploy",
            "reg-dev-ep",
            str(CONFIG),
            "azureml:diabetes-model:1",
        )
        assert r.returncode == 0, r.stderr
        r = _script(
            project, "blue-green.sh", "promote", "reg-dev-ep", str(CONFIG), r.stdout.strip()
        )
        assert r.returncode == 0, r.stderr
        in_dev = _invoke(project, "reg-dev-ep")

        # prod: its own workspace with the scoring environment (make prod-workspace)
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
        promote = (
            "promote.sh",
            str(REPO / "registries" / "registry.yml"),
            "diabetes-model",
            "reg-prod-ep",
            str(CONFIG),
        )
        r = _script(project, *promote, PROD_WORKSPACE="prod")
        assert r.returncode == 0, r.stderr
        uri = "azureml://registries/diabetes-registry/models/diabetes-model/versions/1"
        shown = project.json(
            "online-deployment", "show", "-n", "blue", "-e", "reg-prod-ep", "-w", "prod"
        )
        assert shown["model"] == uri
        assert _invoke(project, "reg-prod-ep", "-w", "prod") == in_dev
        shared = project.json(
            "model",
            "show",
            "-n",
            "diabetes-model",
            "-v",
            "1",
            "--registry-name",
            "diabetes-registry",
        )
        assert shared["tags"]["test_rmse"] == "53.1"
        assert shared["properties"]["azureml.sharedFrom.workspace"] == "local"
        # prod has no model of its own: it serves the registry's; dev's endpoint is not prod's
        assert project.json("model", "list", "-w", "prod") == []
        assert project.json("online-endpoint", "list", "-w", "prod", "--query", "[].name") == [
            "reg-prod-ep"
        ]
        # a second promotion of the same champion changes nothing
        r = _script(project, *promote, PROD_WORKSPACE="prod")
        assert r.returncode == 0, r.stderr
        assert "already holds diabetes-model:1" in r.stderr and "nothing to deploy" in r.stderr
        traffic = project.json(
            "online-endpoint", "show", "-n", "reg-prod-ep", "-w", "prod", "--query", "traffic"
        )
        assert traffic == {"blue": 100}
    finally:
        for ep, ws in (("reg-dev-ep", ()), ("reg-prod-ep", ("-w", "prod"))):
            project.run(
                "online-endpoint", "delete", "-n", ep, "--yes", "-o", "none", *ws, check=False
            )
        assert kill_leftovers(project.home) == []
