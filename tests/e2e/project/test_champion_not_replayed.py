"""Issue 31, item 2: evaluate and register read the registry (the champion), which is not an
input, so their components are `is_deterministic: false`. The champion changes between two
otherwise identical runs of pipelines/train.yml: the second run's evaluate and register decide
again, against the new champion, and their logs say what happened (before, both were reused and
register's log claimed "registered version 1 as champion" while v2 stayed champion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.project.test_train_pipeline_e2e import Cli

NO_DEPLOY = ("--set", "inputs.deploy=false")  # the endpoint is not what this tests


def _run(cli: Cli, name: str, *sets: str) -> dict[str, dict[str, Any]]:
    job, run = cli("job", "create", "-f", "pipelines/train.yml", "--stream", "-n", name, *sets)
    assert job["status"] == "Completed", run.stderr
    steps, _ = cli("job", "list", "--parent-job-name", name)
    return {s["display_name"]: s for s in steps}


def _log(cli: Cli, step: dict[str, Any]) -> str:
    return (cli.home / "jobs" / step["name"] / "user_logs" / "std_log.txt").read_text()


def _champion(cli: Cli) -> str:
    versions, _ = cli("model", "list", "-n", "diabetes-model")
    (champion,) = [v["version"] for v in versions if v["tags"].get("champion") == "true"]
    return str(champion)


def test_a_changed_champion_is_decided_again(tmp_path: Path) -> None:
    cli = Cli(tmp_path / ".amlocal")
    for kind, f in (("data", "data/diabetes.yml"), ("environment", "environments/train.yml")):
        cli(kind, "create", "-f", f)
    first = _run(cli, "first", *NO_DEPLOY)
    assert "registered diabetes-model version 1 as champion" in _log(cli, first["register"])
    assert _champion(cli) == "1"

    # The champion changes: a much worse model is crowned with the gate off.
    _run(cli, "worse", *NO_DEPLOY, "--set", "inputs.alpha=300", "--set",
         "inputs.enable_evaluation=false")  # fmt: skip
    assert _champion(cli) == "2"

    # The same run as the first: prep and train are reused, evaluate and register are not.
    again = _run(cli, "again", *NO_DEPLOY)
    for name in ("prep", "train"):
        assert again[name]["properties"].get("azureml.isreused") == "true", name
    for name in ("evaluate", "register"):
        assert again[name]["properties"].get("azureml.isreused") is None, name
        assert again[name]["name"] != first[name]["name"]

    decision_dir = Path(again["evaluate"]["outputs"]["decision"]["local_path"])
    decision = json.loads((decision_dir / "decision.json").read_text())
    assert decision["promote"] is True
    assert any("vs champion v2" in r for r in decision["reasons"]), decision["reasons"]
    evaluate_log = _log(cli, again["evaluate"])
    assert "promote=True" in evaluate_log and "vs champion v2" in evaluate_log

    # register acted on that decision, and its log names the version that is champion now.
    champion = _champion(cli)
    assert champion != "2"
    register_log = _log(cli, again["register"])
    assert f"version {champion}" in register_log, register_log
    assert "registered diabetes-model version 1 as champion" not in register_log or champion == "1"
