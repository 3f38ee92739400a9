"""Unit tests for src/train/train_lib.py: the fit, the metrics and the saved MLflow model."""

from __future__ import annotations

import json
import re
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "src" / "prep"), str(ROOT / "src" / "train")]

import prep_lib  # noqa: E402
import train_lib  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prep_lib.prepare(ROOT / "data" / "diabetes.csv", out, test_size=0.2, seed=42)
    return out


@pytest.fixture(scope="module")
def saved(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    x, y = train_lib.load_split(prepared, "train.csv")
    model = train_lib.fit(x, y, alpha=0.5)
    out = tmp_path_factory.mktemp("model")  # exists and is empty, as on the platform
    train_lib.save_model(model, x, out)
    return out, model


def test_load_split_uses_prep_feature_order(prepared: Path) -> None:
    x, y = train_lib.load_split(prepared, "train.csv")
    assert list(x.columns) == prep_lib.FEATURES
    assert y.name == "target" and len(x) == len(y) > 300


def test_alpha_regularizes_and_must_be_non_negative(prepared: Path) -> None:
    x, y = train_lib.load_split(prepared, "train.csv")
    small, large = train_lib.fit(x, y, alpha=0.01), train_lib.fit(x, y, alpha=1000.0)
    assert np.linalg.norm(large.coef_) < np.linalg.norm(small.coef_)
    assert train_lib.fit(x, y, alpha=1.0, fit_intercept=False).intercept_ == 0.0
    with pytest.raises(ValueError, match="alpha"):
        train_lib.fit(x, y, alpha=-1.0)


def test_regression_metrics_against_hand_computed_values() -> None:
    metrics = train_lib.regression_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert metrics["rmse"] == pytest.approx(1.0)  # sqrt(4 / 4)
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["r2"] == pytest.approx(1 - 4 / 5)  # SS_res 4, SS_tot 5
    assert train_lib.regression_metrics([1, 2], [1, 2])["rmse"] == 0.0


@pytest.mark.parametrize(
    ("text", "expected"), [("True", True), ("true", True), ("1", True), ("False", False)]
)
def test_parse_bool_accepts_azure_spellings(text: str, expected: bool) -> None:
    assert train_lib.parse_bool(text) is expected


def test_parse_bool_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        train_lib.parse_bool("maybe")


def test_saved_model_has_signature_example_and_cloudpickle(saved: tuple[Path, object]) -> None:
    folder, _ = saved
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [col["name"] for col in inputs] == prep_lib.FEATURES
    # doubles, not longs: a scoring client sending 59.0 for age must not be rejected
    assert {col["type"] for col in inputs} == {"double"}
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert (folder / mlmodel["saved_input_example_info"]["artifact_path"]).is_file()


def test_saved_requirements_are_explicit_and_match_pyproject(saved: tuple[Path, object]) -> None:
    folder, _ = saved
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements == train_lib.MODEL_PIP_REQUIREMENTS
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(re.match(r"([\w.-]+)==(\S+)", d).groups() for d in project)
    for requirement in requirements:
        name, pinned = requirement.split("==")
        if name != "cloudpickle":  # not a direct dependency: pinned to what pickled the model
            assert pins[name] == pinned, f"{name} drifted from pyproject.toml"


def test_saved_model_reloads_and_predicts_identically_without_warnings(
    saved: tuple[Path, object], prepared: Path
) -> None:
    import mlflow.pyfunc

    folder, model = saved
    x, _ = train_lib.load_split(prepared, "test.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. sklearn's "X does not have valid feature names"
        loaded = mlflow.pyfunc.load_model(str(folder))
        predictions = np.asarray(loaded.predict(x))
    np.testing.assert_allclose(predictions, model.predict(x))
    assert loaded.metadata.get_input_schema().input_names() == prep_lib.FEATURES
