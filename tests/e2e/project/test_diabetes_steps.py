"""The four entry points, run as the platform runs them: real subprocesses, one MLflow run each.

Each step's command comes from its component YAML, is run by bash in a copy of its code
folder, with existing empty output folders and MLFLOW_TRACKING_URI / MLFLOW_RUN_ID /
MLFLOW_EXPERIMENT_NAME set for a run created beforehand (as Azure ML and amlocal do).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[3]
COMMIT = "feedfacecafebeef0000000000000000deadbeef"
EXPERIMENT = "diabetes-steps"


@dataclass
class Platform:
    root: Path
    uri: str
    client: MlflowClient
    experiment_id: str
    runs: dict[str, str] = field(default_factory=dict)
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def start(
        self, label: str, component: str, inputs: dict[str, str], outputs: list[str]
    ) -> tuple[subprocess.Popen[str], dict[str, Path]]:
        """Start one component like the platform does; finish() waits for it."""
        spec = yaml.safe_load((ROOT / "components" / f"{component}.yml").read_text())
        workdir = self.root / label / "code"
        shutil.copytree((ROOT / "components" / spec["code"]).resolve(), workdir)
        folders = {name: self.root / label / "outputs" / name for name in outputs}
        for folder in folders.values():
            folder.mkdir(parents=True)

        def optional(match: re.Match[str]) -> str:
            used = re.findall(r"\$\{\{inputs\.(\w+)\}\}", match.group(1))
            return match.group(1) if all(name in inputs for name in used) else ""

        command = re.sub(r"\$\[\[(.*?)\]\]", optional, spec["command"])
        command = re.sub(r"\$\{\{inputs\.(\w+)\}\}", lambda m: shlex.quote(inputs[m[1]]), command)
        command = re.sub(
            r"\$\{\{outputs\.(\w+)\}\}", lambda m: shlex.quote(str(folders[m[1]])), command
        )
        run = self.client.create_run(
            self.experiment_id,
            run_name=label,
            tags={"mlflow.source.git.commit": COMMIT},
        )
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_RUN_ID": run.info.run_id,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
        }
        self.runs[label] = run.info.run_id
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return process, folders

    def finish(self, label: str, started: tuple[subprocess.Popen[str], dict[str, Path]]) -> dict:
        process, folders = started
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"{label} failed:\n{stdout}\n{stderr}"
        self.results[label] = subprocess.CompletedProcess(process.args, 0, stdout, stderr)
        return folders

    def run(self, label: str, component: str, inputs: dict[str, str], outputs: list[str]) -> dict:
        """Run one component to completion: returns {output name: folder}."""
        return self.finish(label, self.start(label, component, inputs, outputs))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """prep -> train -> evaluate -> register, then a register whose decision says no."""
    root = tmp_path_factory.mktemp("steps")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=str(root / "art"))
    p = Platform(root, uri, client, experiment_id)
    csv = str(ROOT / "data" / "diabetes.csv")
    prepared = p.run("prep", "prep_data", {"data": csv, "test_size": "0.2", "seed": "42"},
                     ["prepared_data"])["prepared_data"]  # fmt: skip
    model = p.run("train", "train_model", {"prepared_data": str(prepared), "alpha": "0.5"},
                  ["model"])["model"]  # fmt: skip
    common = {"model": str(model), "prepared_data": str(prepared), "model_name": "diabetes-model"}
    # A register step handed a decision that says no. It needs nothing from evaluate, so it
    # runs alongside evaluate (2 cores) to keep this module fast.
    refusal = root / "refusal"
    refusal.mkdir()
    (refusal / "decision.json").write_text(
        json.dumps({"promote": False, "reasons": ["challenger is worse"], "challenger": {}})
    )
    refuse = p.start("refuse", "register_model", {**common, "decision": str(refusal)},
                     ["registration"])  # fmt: skip
    decision = p.run(
        "evaluate", "evaluate_model", {**common, "enable_evaluation": "True"}, ["decision"]
    )["decision"]
    p.finish("refuse", refuse)
    p.run("register", "register_model", {**common, "decision": str(decision)}, ["registration"])
    return p


def output(platform: Platform, label: str, name: str, file_name: str) -> dict:
    return json.loads((platform.root / label / "outputs" / name / file_name).read_text())


def test_scripts_log_into_the_given_runs_and_start_none(platform: Platform) -> None:
    runs = platform.client.search_runs([platform.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(platform.runs.values())


def test_prep_logs_the_data_hash(platform: Platform) -> None:
    data = platform.client.get_run(platform.runs["prep"]).data
    expected = hashlib.sha256((ROOT / "data" / "diabetes.csv").read_bytes()).hexdigest()
    assert data.params["data_sha256"] == expected
    metadata = output(platform, "prep", "prepared_data", "metadata.json")
    assert metadata["data_sha256"] == expected
    assert data.metrics["test_rows"] == metadata["test_rows"]


def test_train_logs_params_and_metrics_and_writes_the_model(platform: Platform) -> None:
    data = platform.client.get_run(platform.runs["train"]).data
    assert float(data.params["alpha"]) == 0.5 and data.params["fit_intercept"] == "True"
    assert 0 < data.metrics["train_rmse"] and 0 < data.metrics["train_r2"] < 1
    assert (platform.root / "train" / "outputs" / "model" / "MLmodel").is_file()


def test_the_train_run_links_to_the_model_it_logged(platform: Platform) -> None:
    """#16 item 5: the train run's "Logged models" shows the model (MLflow 3 logged model)."""
    run_id = platform.runs["train"]
    models = platform.client.search_logged_models(
        experiment_ids=[platform.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    assert [m.name for m in models] == ["model"] and str(models[0].status) == "READY"
    files = {a.path for a in platform.client.list_logged_model_artifacts(models[0].model_id)}
    assert "MLmodel" in files


def test_evaluate_logs_metrics_plots_and_writes_the_decision(platform: Platform) -> None:
    run_id = platform.runs["evaluate"]
    data = platform.client.get_run(run_id).data
    decision = output(platform, "evaluate", "decision", "decision.json")
    assert decision["promote"] is True and decision["champion"] is None
    assert data.metrics["test_rmse"] == pytest.approx(decision["challenger"]["rmse"])
    assert data.metrics["promote"] == 1
    plots = {a.path for a in platform.client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/predicted_vs_actual.png", "plots/residuals.png"}


def test_register_registers_from_its_own_run_and_moves_the_alias(platform: Platform) -> None:
    info = output(platform, "register", "registration", "model_info.json")
    assert info["registered"] is True and info["version"] == "1"
    version = platform.client.get_model_version_by_alias("diabetes-model", "champion")
    assert str(version.version) == "1"
    assert version.run_id == platform.runs["register"]  # the registry entry is self-contained
    assert version.tags["git_commit"] == COMMIT
    metadata = output(platform, "prep", "prepared_data", "metadata.json")
    assert version.tags["data_sha256"] == metadata["data_sha256"]
    assert "diabetes-model version 1 as champion" in platform.results["register"].stdout


def test_register_with_a_negative_decision_registers_nothing_and_succeeds(
    platform: Platform,
) -> None:
    info = output(platform, "refuse", "registration", "model_info.json")
    assert info["registered"] is False and "worse" in info["reason"]
    versions = platform.client.search_model_versions("name='diabetes-model'")
    assert [str(v.version) for v in versions] == ["1"]
    assert platform.client.get_run(platform.runs["refuse"]).data.params["registered"] == "False"
    assert platform.client.list_artifacts(platform.runs["refuse"]) == []
