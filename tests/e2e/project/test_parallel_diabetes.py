"""src/batch_score/batch_score.py through the parallel executor with the settings of
endpoints/batch/diabetes/deployment.yml: predictions equal the model's in-process
predictions row for row, on the committed folder, on many generated files and on a CSV
split by rows; a corrupt CSV fails only its mini-batch; every batch YAML loads with
azure-ai-ml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amlocal import loader
from amlocal.jobs.kinds import parallel as P

ROOT = Path(__file__).resolve().parents[3]
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
BATCH_YAML = sorted((ROOT / "endpoints" / "batch").rglob("*.yml"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sklearn Ridge saved as the training pipeline saves it (cloudpickle)."""
    import mlflow.sklearn
    from sklearn.linear_model import Ridge

    frame = pd.read_csv(ROOT / "data" / "diabetes.csv")
    model = Ridge(alpha=1.0).fit(frame[FEATURES].astype("float64"), frame["target"])
    # Azure mounts a registered MLflow model as <AZUREML_MODEL_DIR>/<folder>/MLmodel.
    root = tmp_path_factory.mktemp("model")
    mlflow.sklearn.save_model(model, str(root / "model"), serialization_format="cloudpickle")
    return root


def load_model(model_dir: Path):
    import cloudpickle

    return cloudpickle.loads((model_dir / "model" / "model.pkl").read_bytes())


def deployment_spec(model_dir: Path, **overrides) -> P.ParallelSpec:
    entity = loader.load("batch-deployment", ROOT / "endpoints/batch/diabetes/deployment.yml")
    settings = dict(entity._to_dict()["settings"])
    settings.update(overrides)
    return P.ParallelSpec.for_batch_deployment(
        settings,
        code_dir=ROOT / "src" / "batch_score",
        entry_script="batch_score.py",
        environment_variables={"AZUREML_MODEL_DIR": str(model_dir)},
    )


def score(tmp_path: Path, spec: P.ParallelSpec, source: Path, tag: str) -> P.Summary:
    batches = P.plan(source, spec.mini_batch_size)
    return P.execute(spec, batches, tmp_path / tag / "out", tmp_path / tag / "logs", log=print)


def expected(model, files: list[Path]) -> pd.DataFrame:
    parts = []
    for f in files:
        frame = pd.read_csv(f)
        parts.append(
            pd.DataFrame(
                {"row": range(len(frame)), "prediction": model.predict(frame), "file": f.name}
            )
        )
    return pd.concat(parts, ignore_index=True)


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=None, names=["row", "prediction", "file"])


def test_every_batch_yaml_loads_with_azure_ai_ml() -> None:
    kinds = {"endpoint.yml": "batch-endpoint"}
    assert BATCH_YAML
    for path in BATCH_YAML:
        entity = loader.load(kinds.get(path.name, "batch-deployment"), path)
        assert entity.name
    data = loader.load("data", ROOT / "data" / "diabetes-batch.yml")
    assert data.type == "uri_folder"


def test_committed_folder_matches_in_process_predictions(tmp_path: Path, model_dir: Path) -> None:
    folder = ROOT / "data" / "diabetes-batch"
    spec = deployment_spec(model_dir)
    summary = score(tmp_path, spec, folder, "committed")
    assert summary.status == "Completed", summary.error
    got = read_predictions(Path(summary.output_file))
    want = expected(load_model(model_dir), sorted(folder.glob("*.csv")))
    assert len(got) == 442 == summary.rows
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=1e-12)


def test_many_generated_files_and_a_corrupt_one(tmp_path: Path, model_dir: Path) -> None:
    src = pd.read_csv(ROOT / "data" / "diabetes.csv")[FEATURES]
    folder = tmp_path / "input-many"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(40):
        src.iloc[rng.integers(0, len(src), 25)].to_csv(folder / f"part-{i:03d}.csv", index=False)
    model = load_model(model_dir)
    files = sorted(folder.glob("*.csv"))

    summary = score(tmp_path, deployment_spec(model_dir, mini_batch_size=3), folder, "many")
    assert summary.status == "Completed" and summary.mini_batches == 14
    got = read_predictions(Path(summary.output_file))
    pd.testing.assert_frame_equal(got, expected(model, files), check_exact=False, rtol=1e-12)

    # A corrupt CSV fails its own mini-batch only; error_threshold decides the job.
    (folder / "part-005.csv").write_text("age,sex\n1,2,3,4\n\x00garbage")
    tolerant = deployment_spec(
        model_dir, mini_batch_size=3, error_threshold=-1, retry_settings={"max_retries": 0}
    )
    summary = score(tmp_path, tolerant, folder, "tolerant")
    assert summary.status == "Completed" and summary.items_failed == 3
    assert summary.mini_batches_failed == 1
    assert "part-005.csv" in summary.failures[0]["error"]
    assert "part-005.csv" in (tmp_path / "tolerant/logs/job_error.txt").read_text()
    good = [f for f in files if f.name not in ("part-003.csv", "part-004.csv", "part-005.csv")]
    got = read_predictions(Path(summary.output_file))
    pd.testing.assert_frame_equal(got, expected(model, good), check_exact=False, rtol=1e-12)

    strict = deployment_spec(model_dir, mini_batch_size=3, retry_settings={"max_retries": 1})
    assert strict.error_threshold == 0  # from deployment.yml
    summary = score(tmp_path, strict, folder, "strict")
    assert summary.status == "Failed"
    assert "error_threshold exceeded" in summary.error and "part-005.csv" in summary.error


def test_single_csv_split_by_rows_matches(tmp_path: Path, model_dir: Path) -> None:
    path = tmp_path / "all.csv"
    shutil.copy(ROOT / "data" / "diabetes-batch" / "diabetes-batch-0.csv", path)
    summary = score(tmp_path, deployment_spec(model_dir, mini_batch_size=25), path, "rows")
    assert summary.status == "Completed" and summary.mini_batches == 5 and summary.rows == 111
    got = read_predictions(Path(summary.output_file))
    want = expected(load_model(model_dir), [path])
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_run_names_the_file_and_cell_of_bad_input(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: each kind of bad CSV is refused with the file (and the column or cell),
    which the executor logs as the mini-batch's failure; a good file scores as the model."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "diabetes_batch_score_t", ROOT / "src" / "batch_score" / "batch_score.py"
    )
    assert spec and spec.loader
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    monkeypatch.setattr(sys, "argv", ["batch_score.py"])
    scorer.init()

    src = pd.read_csv(ROOT / "data" / "diabetes.csv")[FEATURES].head(5)
    good = tmp_path / "good.csv"
    src[FEATURES[::-1]].to_csv(good, index=False)  # column order does not matter
    out = scorer.run([str(good)])
    np.testing.assert_allclose(out["prediction"], load_model(model_dir).predict(src), rtol=1e-12)

    cases = {
        "missing.csv": (
            src.drop(columns=["bmi"]),
            r"missing\.csv: missing feature column\(s\) bmi",
        ),
        "text.csv": (src.assign(s1="high"), r"text\.csv: column 's1' must be numeric"),
        "empty.csv": (
            src.astype({"bp": object}).assign(bp=[1, 2, None, 4, 5]),
            r"empty\.csv: row 2, column 'bp' is empty",
        ),
    }
    for name, (frame, message) in cases.items():
        frame.to_csv(tmp_path / name, index=False)
        with pytest.raises(ValueError, match=message):
            scorer.run([str(good), str(tmp_path / name)])
    (tmp_path / "broken.csv").write_text("age,sex\n1,2,3\n")
    with pytest.raises(ValueError, match=r"broken\.csv: cannot read CSV"):
        scorer.run([str(tmp_path / "broken.csv")])
