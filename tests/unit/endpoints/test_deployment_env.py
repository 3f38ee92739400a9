"""amlocal/endpoints/deployment_env.py in-process: the moved-pins line, an MLflow model's own
environment, how environments are named. (Serving from built venvs: tests/e2e/endpoints/
test_deployment_environments.py.)"""

from __future__ import annotations

from pathlib import Path

from amlocal.endpoints import deployment_env
from amlocal.environments import spec

HAVE = {"scikit-learn": "1.9.1", "numpy": "2.4.6", "pandas": "2.3.3"}


def test_every_moved_pin_is_named_and_met_ones_are_not() -> None:
    wanted = spec.from_conda(
        {
            "dependencies": [
                "python=3.12",
                "scikit-learn=1.7",
                "numpy==2.3.1",
                "pip",
                {"pip": ["pandas>=2", "lightgbm==4.0", "six; python_version < '3'"]},
            ]
        }
    )
    moved = deployment_env.moved_pins(wanted, HAVE.get, "3.11.7")
    assert moved == [
        "python 3.12 declared, 3.11.7 serves",
        "scikit-learn 1.7.* declared, 1.9.1 serves",
        "numpy 2.3.1 declared, 2.4.6 serves",
        "lightgbm 4.0 declared, not installed",
    ]


def test_a_python_of_the_same_minor_version_is_not_a_move() -> None:
    wanted = spec.Spec(python="3.11", requirements=("numpy>=2",))
    assert deployment_env.moved_pins(wanted, HAVE.get, "3.11.7") == []


def _mlflow_model(root: Path, mlmodel: str, files: dict[str, str]) -> Path:
    model = root / "model"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text(mlmodel)
    for name, text in files.items():
        (model / name).write_text(text)
    return root


MLMODEL = """\
flavors:
  python_function:
    env:
      conda: {conda}
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
"""
CONDA = "name: mlflow-env\ndependencies:\n- python=3.11.7\n- pip:\n  - scikit-learn==1.7.0\n"


def test_an_mlflow_models_environment_is_the_conda_file_its_mlmodel_names(
    tmp_path: Path,
) -> None:
    root = _mlflow_model(
        tmp_path,
        MLMODEL.format(conda="env/conda.yml"),
        {"requirements.txt": "scikit-learn==1.0\n"},
    )
    (root / "model" / "env").mkdir()
    (root / "model" / "env" / "conda.yml").write_text(CONDA)
    found = deployment_env.mlflow_environment(root)  # the MLmodel one folder down
    assert found is not None
    assert deployment_env.spec_of(found).requirements == ("scikit-learn==1.7.0",)
    assert deployment_env.spec_of(found).python == "3.11"


def test_without_a_conda_file_its_requirements_txt_is_read(tmp_path: Path) -> None:
    root = _mlflow_model(
        tmp_path, MLMODEL.format(conda="conda.yaml"), {"requirements.txt": "mlflow==3.1\n"}
    )
    found = deployment_env.mlflow_environment(root)
    assert found is not None
    assert deployment_env.spec_of(found).requirements == ("mlflow==3.1",)


def test_a_conda_path_outside_the_model_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "outside.yaml").write_text(CONDA)
    root = _mlflow_model(tmp_path / "m", MLMODEL.format(conda="../../outside.yaml"), {})
    assert deployment_env.mlflow_environment(root) is None


def test_environments_are_named_as_written() -> None:
    label = deployment_env.label
    assert label({"name": "score-env", "version": "3"}) == "score-env:3"
    assert label({"curated": "azureml:AzureML-sklearn-1.5@latest", "name": "x"}) == (
        "azureml:AzureML-sklearn-1.5@latest"
    )
    anonymous = {"name": "CliV2AnonymousEnvironment", "version": "ab12"}
    assert label({**anonymous, "conda_file": {"name": "model-1"}}) == "inline (model-1)"
    assert label(anonymous) == "inline"
