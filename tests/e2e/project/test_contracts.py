"""The contracts of docs/bring-your-own-code.md, checked on this project's own data.

Each component runs as the platform runs it (its YAML command, a copy of its code folder,
empty output folders, an MLflow run made beforehand), on the data asset and task that
pipelines/train.yml names. Swap in your own prep/train/evaluate/score code and these tests
say which output breaks the contract. Every message starts with the component and output.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[3]
PIPELINE = yaml.safe_load((ROOT / "pipelines" / "train.yml").read_text())
TASK = PIPELINE["inputs"].get("task", "regression")
MODEL_NAME = PIPELINE["inputs"]["model_name"]
PRIMARY = {"regression": "rmse", "classification": "accuracy"}[TASK]
DECISION_KEYS = {
    "promote",
    "reasons",
    "primary_metric",
    "evaluation_enabled",
    "challenger",
    "champion",
}


def data_asset() -> Path:
    """The file behind `inputs.data` of pipelines/train.yml (azureml:<name>:<version>)."""
    _, name, version = PIPELINE["inputs"]["data"]["path"].split(":")
    for path in sorted((ROOT / "data").glob("*.yml")):
        spec = yaml.safe_load(path.read_text())
        if spec.get("name") == name and str(spec.get("version")) == version:
            return (path.parent / spec["path"]).resolve()
    raise AssertionError(f"pipelines/train.yml: no data/*.yml declares {name}:{version}")


@dataclass
class Steps:
    root: Path
    client: MlflowClient
    experiment_id: str
    runs: dict[str, str] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)

    def run(self, label: str, component: str, inputs: dict[str, str], outputs: list[str]) -> dict:
        """One component, as Azure ML / amlocal runs it; returns {output name: folder}."""
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
        run = self.client.create_run(self.experiment_id, run_name=label)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": self.client.tracking_uri,
            "MLFLOW_RUN_ID": run.info.run_id,
        }
        self.runs[label] = run.info.run_id
        done = subprocess.run(
            ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        self.logs[label] = done.stdout + done.stderr
        assert done.returncode == 0, f"{component}: exited {done.returncode}:\n{self.logs[label]}"
        return folders


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> Steps:
    root = tmp_path_factory.mktemp("contracts")
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.create_experiment("contracts", artifact_location=str(root / "art"))
    return Steps(root, client, experiment)


@pytest.fixture(scope="module")
def prepared(steps: Steps) -> Path:
    inputs = {"data": str(data_asset()), "test_size": "0.2", "seed": "42"}
    return steps.run("prep", "prep_data", inputs, ["prepared_data"])["prepared_data"]


@pytest.fixture(scope="module")
def metadata(prepared: Path) -> dict[str, Any]:
    path = prepared / "metadata.json"
    assert path.is_file(), "prep: prepared_data has no metadata.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def model(steps: Steps, prepared: Path) -> Path:
    inputs = {"prepared_data": str(prepared), "alpha": "1.0", "task": TASK}
    return steps.run("train", "train_model", inputs, ["model"])["model"]


@pytest.fixture(scope="module")
def decision(steps: Steps, prepared: Path, model: Path) -> Path:
    inputs = {
        "model": str(model),
        "prepared_data": str(prepared),
        "model_name": MODEL_NAME,
        "enable_evaluation": "True",
        "task": TASK,
    }
    return steps.run("evaluate", "evaluate_model", inputs, ["decision"])["decision"]


def test_prep_writes_the_split_and_its_metadata(prepared: Path, metadata: dict) -> None:
    source = pd.read_csv(data_asset())
    for key in ("features", "target", "data_sha256", "train_rows", "test_rows"):
        assert key in metadata, f"prep: prepared_data/metadata.json lacks {key!r}"
    features, target = metadata["features"], metadata["target"]
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["data_sha256"]), "prep: data_sha256"
    assert target in source.columns, f"prep: metadata target {target!r} is not a data column"
    for name, rows in (("train.csv", "train_rows"), ("test.csv", "test_rows")):
        assert (prepared / name).is_file(), f"prep: prepared_data has no {name}"
        split = pd.read_csv(prepared / name)
        assert list(split.columns) == [*features, target], (
            f"prep: prepared_data/{name} columns must be metadata features + target, "
            f"got {list(split.columns)}"
        )
        assert len(split) == metadata[rows], f"prep: {name} has {len(split)} rows, metadata {rows}"
    assert metadata["train_rows"] + metadata["test_rows"] == len(source), "prep: rows lost"


def test_train_writes_an_mlflow_model_and_logs_metrics(
    steps: Steps, prepared: Path, metadata: dict, model: Path
) -> None:
    import mlflow.pyfunc

    assert (model / "MLmodel").is_file(), (
        "train: the `model` output holds no MLflow model (MLmodel)"
    )
    loaded = mlflow.pyfunc.load_model(str(model))
    signature = loaded.metadata.signature
    assert signature is not None, "train: the MLflow model has no signature"
    assert signature.inputs.input_names() == metadata["features"], (
        "train: the model signature's inputs must be prep's features, in order"
    )
    test = pd.read_csv(prepared / "test.csv")
    predictions = list(loaded.predict(test[metadata["features"]].astype("float64")))
    assert len(predictions) == len(test), "train: the model must give one prediction per row"
    if TASK == "classification":
        labels = set(pd.read_csv(prepared / "train.csv")[metadata["target"]])
        assert set(predictions) <= labels, "train: a classifier must predict the training labels"
    metrics = steps.client.get_run(steps.runs["train"]).data.metrics
    assert f"train_{PRIMARY}" in metrics, f"train: must log the metric train_{PRIMARY}"


def test_evaluate_writes_the_decision(decision: Path) -> None:
    path = decision / "decision.json"
    assert path.is_file(), "evaluate: the `decision` output has no decision.json"
    content = json.loads(path.read_text())
    assert set(content) == DECISION_KEYS, f"evaluate: decision.json keys must be {DECISION_KEYS}"
    assert content["promote"] is True, "evaluate: with no champion the challenger is promoted"
    assert content["primary_metric"] == PRIMARY, f"evaluate: primary_metric must be {PRIMARY}"
    assert content["champion"] is None, "evaluate: champion must be null when none is registered"
    assert all(isinstance(r, str) for r in content["reasons"]) and content["reasons"]
    value = content["challenger"].get(PRIMARY)
    assert isinstance(value, float) and math.isfinite(value), (
        f"evaluate: challenger.{PRIMARY} must be a finite number"
    )


def test_register_obeys_the_decision_and_writes_model_info(
    steps: Steps, prepared: Path, model: Path, decision: Path, tmp_path: Path
) -> None:
    common = {"model": str(model), "prepared_data": str(prepared), "model_name": MODEL_NAME}
    refusal = tmp_path / "refusal"
    refusal.mkdir()
    (refusal / "decision.json").write_text(
        json.dumps({"promote": False, "reasons": ["challenger is worse"], "challenger": {}})
    )
    out = steps.run("refuse", "register_model", {**common, "decision": str(refusal)},
                    ["registration"])["registration"]  # fmt: skip
    info = json.loads((out / "model_info.json").read_text())
    assert info == {"registered": False, "name": MODEL_NAME, "reason": "challenger is worse"}, (
        "register: a decision with promote=false must register nothing"
    )
    out = steps.run("register", "register_model", {**common, "decision": str(decision)},
                    ["registration"])["registration"]  # fmt: skip
    info = json.loads((out / "model_info.json").read_text())
    assert {"registered", "name", "version", "champion_alias", "reasons"} <= set(info), (
        "register: model_info.json keys"
    )
    assert info["registered"] is True and info["name"] == MODEL_NAME and info["version"] == "1"
    champion = steps.client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == "1", "register: the champion alias must move to the new version"


def load_entry(folder: str, file: str) -> Any:
    """An entry script under a unique module name (score.py, batch_score.py)."""
    path = ROOT / "src" / folder / file
    spec = importlib.util.spec_from_file_location(f"contract_{folder}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_score_py_answers_rows_and_records_and_400s_bad_payloads(
    model: Path, prepared: Path, metadata: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model))
    score = load_entry("score", "score.py")
    score.init()
    features = metadata["features"]
    test = pd.read_csv(prepared / "test.csv").head(3)
    rows = test[features].astype(float).to_numpy().tolist()
    records = test[features].astype(float).to_dict(orient="records")
    answer = score.run(rows)
    assert isinstance(answer, list) and len(answer) == 3, "score.py: run(rows) must list 3 answers"
    assert score.run(records) == answer, "score.py: records and rows must score the same"
    json.dumps(answer)  # the answer must be JSON
    bad = {
        "empty list": [],
        "wrong feature count": [row[:-1] for row in rows],
        "missing column": [{k: v for k, v in r.items() if k != features[0]} for r in records],
        "NaN value": [[math.nan, *rows[0][1:]]],
    }
    for what, payload in bad.items():
        reply = score.run(payload)
        assert getattr(reply, "status_code", None) == 400, f"score.py: {what} must answer 400"


def test_batch_score_returns_one_row_per_input_row(
    model: Path, prepared: Path, metadata: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model))
    monkeypatch.setattr(sys, "argv", ["batch_score.py"])
    batch = load_entry("batch_score", "batch_score.py")
    batch.init()
    test = pd.read_csv(prepared / "test.csv")[metadata["features"]]
    files = [tmp_path / "a.csv", tmp_path / "b.csv"]
    test.head(5).to_csv(files[0], index=False)
    test.iloc[5:8].to_csv(files[1], index=False)
    result = batch.run([str(f) for f in files])
    assert list(result.columns) == ["row", "prediction", "file"], (
        "batch_score.py: run() must return the columns row, prediction, file"
    )
    assert len(result) == 8, "batch_score.py: one result row per input row"
    assert list(result["row"]) == [0, 1, 2, 3, 4, 0, 1, 2], "batch_score.py: row numbers"
    assert list(result["file"].astype(str)) == ["a.csv"] * 5 + ["b.csv"] * 3
