"""pipelines/train.yml end to end through the `amlocal` CLI, in a temporary workspace: the
model is registered and promoted, tracked in MLflow with plots, deployed and serving; a
rerun with a worse hyperparameter registers and deploys nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
AMLOCAL = [sys.executable, "-m", "amlocal.cli"]


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "AMLOCAL_HOME": str(home)}
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def __call__(self, *args: str, ok: bool = True) -> tuple[Any, subprocess.CompletedProcess[str]]:
        r = subprocess.run(
            [*AMLOCAL, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600
        )
        if ok and r.returncode != 0:
            raise AssertionError(
                f"amlocal {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
            )
        return (json.loads(r.stdout) if r.stdout.strip() else None), r


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cli = Cli(tmp_path_factory.mktemp("train") / ".amlocal")
    for kind, f in (
        ("data", "data/diabetes.yml"),
        ("environment", "environments/train.yml"),
        ("environment", "environments/score.yml"),
    ):
        cli(kind, "create", "-f", f)
    job, run = cli("job", "create", "-f", "pipelines/train.yml", "--stream", "-n", "first")
    try:
        yield cli, job, run
    finally:
        cli("online-endpoint", "delete", "-n", "diabetes", "--yes", ok=False)


def test_pipeline_completes_with_every_step(trained: Any) -> None:
    cli, job, run = trained
    assert job["status"] == "Completed", run.stderr
    steps, _ = cli("job", "list", "--parent-job-name", "first")
    assert {s["display_name"]: s["status"] for s in steps} == {
        "prep": "Completed",
        "train": "Completed",
        "evaluate": "Completed",
        "register": "Completed",
        "deploy": "Completed",
    }


def test_registered_version_alias_and_tags(trained: Any) -> None:
    cli, _, _ = trained
    model, _ = cli("model", "show", "-n", "diabetes-model", "--version", "1")
    tags = model["tags"]
    assert tags.get("champion") == "true"
    assert "champion" in model["aliases"]
    assert float(tags["test_rmse"]) > 0 and float(tags["test_r2"]) > 0
    data_sha = __import__("hashlib").sha256((REPO / "data/diabetes.csv").read_bytes()).hexdigest()
    assert tags["data_sha256"] == data_sha
    job, _ = cli("job", "show", "-n", "first")
    commit = job["properties"]["azureml.git.commit"]  # HEAD when the job was submitted
    kind = subprocess.run(
        ["git", "cat-file", "-t", commit], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    assert kind == "commit" and tags["git_commit"] == commit


def test_mlflow_runs_nested_with_metrics_and_plots(trained: Any) -> None:
    cli, job, _ = trained
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cli.home / 'mlflow.db'}")
    shown, _ = cli("job", "show", "-n", "first")
    parent = shown["properties"]["mlflow.runId"]
    runs = {}
    for step, info in shown["jobs"].items():
        runs[step] = client.get_run(info["properties"]["mlflow.runId"])
        assert runs[step].data.tags["mlflow.parentRunId"] == parent
    assert runs["evaluate"].data.metrics["test_rmse"] > 0
    assert runs["train"].data.params["alpha"] == "1.0"
    run_id = runs["evaluate"].info.run_id
    plots = [a.path for a in client.list_artifacts(run_id, "plots")]
    assert len([p for p in plots if p.endswith(".png")]) >= 2, plots  # predicted/actual, residuals


def test_model_is_serving_after_train(trained: Any) -> None:
    cli, _, _ = trained
    out, _ = cli(
        "online-endpoint",
        "invoke",
        "-n",
        "diabetes",
        "-r",
        "endpoints/online/diabetes/sample-request.json",
    )
    preds = out if isinstance(out, list) else json.loads(out) if isinstance(out, str) else out
    assert len(preds) == 2 and all(isinstance(p, float) for p in preds)


def test_rerun_reuses_training_and_keeps_the_live_slot(trained: Any) -> None:
    cli, _, _ = trained
    before, _ = cli("online-endpoint", "show", "-n", "diabetes")
    job, run = cli("job", "create", "-f", "pipelines/train.yml", "--stream", "-n", "again")
    assert job["status"] == "Completed", run.stderr
    steps = {s["display_name"]: s for s in cli("job", "list", "--parent-job-name", "again")[0]}
    for name in ("prep", "train"):
        assert steps[name]["properties"].get("azureml.isreused") == "true", name
    # evaluate and register read the registry (is_deterministic: false), deploy changes an
    # endpoint: all three run. The same model as the champion v1 is not promoted again, so
    # nothing is registered and nothing deployed.
    for name in ("evaluate", "register", "deploy"):
        assert steps[name]["properties"].get("azureml.isreused") is None, name
    decision = Path(steps["evaluate"]["outputs"]["decision"]["local_path"]) / "decision.json"
    assert json.loads(decision.read_text())["promote"] is False
    info = json.loads(
        (
            Path(steps["deploy"]["outputs"]["deployment"]["local_path"]) / "deploy_info.json"
        ).read_text()
    )
    assert info["deployed"] is False
    after, _ = cli("online-endpoint", "show", "-n", "diabetes")
    assert after["traffic"] == before["traffic"]


def test_worse_model_registers_and_deploys_nothing(trained: Any) -> None:
    cli, _, _ = trained
    endpoint_before, _ = cli("online-endpoint", "show", "-n", "diabetes")
    job, run = cli(
        "job",
        "create",
        "-f",
        "pipelines/train.yml",
        "--stream",
        "-n",
        "worse",
        "--set",
        "inputs.alpha=300",
    )
    assert job["status"] == "Completed", run.stderr
    steps = {s["display_name"]: s for s in cli("job", "list", "--parent-job-name", "worse")[0]}
    assert steps["prep"]["properties"].get("azureml.isreused") == "true"
    decision = Path(steps["evaluate"]["outputs"]["decision"]["local_path"]) / "decision.json"
    assert json.loads(decision.read_text())["promote"] is False
    versions, _ = cli("model", "list", "-n", "diabetes-model")
    assert [v["version"] for v in versions] == ["1"]
    endpoint_after, _ = cli("online-endpoint", "show", "-n", "diabetes")
    assert endpoint_after["traffic"] == endpoint_before["traffic"]


def _serving(cli: Cli) -> dict[str, str]:
    """{deployment: model} of the deployments that take traffic on `diabetes`."""
    endpoint, _ = cli("online-endpoint", "show", "-n", "diabetes")
    live = {}
    for name, pct in endpoint["traffic"].items():
        if pct > 0:
            dep, _ = cli("online-deployment", "show", "-n", name, "-e", "diabetes")
            live[name] = dep["model"]
    return live


def _champion(cli: Cli) -> dict[str, Any]:
    versions, _ = cli("model", "list", "-n", "diabetes-model")
    (champion,) = [v for v in versions if v["tags"].get("champion") == "true"]
    return champion


def test_readme_sequence_leaves_the_champion_serving(trained: Any) -> None:
    """README: make train; make train SET=inputs.enable_evaluation=false; make train. The
    gate-off run registers without the gate, but its model (train reused) is version 1's, and
    the same model is never registered twice (hardening II, item 6): v1 stays the champion.
    The last run decides again against v1 (an equal model: kept) and nothing moves."""
    cli, _, _ = trained
    job, run = cli(
        "job", "create", "-f", "pipelines/train.yml", "--stream", "-n", "gateoff",
        "--set", "inputs.enable_evaluation=false",
    )  # fmt: skip
    assert job["status"] == "Completed", run.stderr
    steps = {s["display_name"]: s for s in cli("job", "list", "--parent-job-name", "gateoff")[0]}
    log = cli.home / "jobs" / steps["register"]["name"] / "user_logs" / "std_log.txt"
    assert "version 1 is this model, registered earlier" in log.read_text()
    champion = _champion(cli)
    assert champion["version"] == "1" and float(champion["tags"]["test_rmse"]) > 0
    assert list(_serving(cli).values()) == ["azureml:diabetes-model:1"]
    job, run = cli("job", "create", "-f", "pipelines/train.yml", "--stream", "-n", "plain")
    assert job["status"] == "Completed", run.stderr
    steps = {s["display_name"]: s for s in cli("job", "list", "--parent-job-name", "plain")[0]}
    assert steps["register"]["properties"].get("azureml.isreused") is None
    log = cli.home / "jobs" / steps["register"]["name"] / "user_logs" / "std_log.txt"
    assert "register: not registered" in log.read_text()
    assert _champion(cli)["version"] == "1"
    assert list(_serving(cli).values()) == ["azureml:diabetes-model:1"]


def test_two_pipelines_at_once_crown_and_serve_the_better_model(trained: Any) -> None:
    """Two trainings at once (issue 20, item 8): the champion is the better of the two, and
    the endpoint serves it, whichever pipeline finished first."""
    cli, _, _ = trained
    procs = [
        subprocess.Popen(
            [
                *AMLOCAL,
                "job",
                "create",
                "-f",
                "pipelines/train.yml",
                "--stream",
                "-n",
                name,
                "--set",
                f"inputs.alpha={alpha}",
            ],
            cwd=REPO,
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name, alpha in (("race-a", 0.1), ("race-b", 0.01))
    ]
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    versions, _ = cli("model", "list", "-n", "diabetes-model")
    champion = _champion(cli)
    best = min(versions, key=lambda v: float(v["tags"]["test_rmse"]))
    assert float(champion["tags"]["test_rmse"]) == float(best["tags"]["test_rmse"])
    assert list(_serving(cli).values()) == [f"azureml:diabetes-model:{champion['version']}"]
