"""Azure's curated environments as published in Azure/azureml-assets (read 2026-12).

Data only: one row per curated environment folder name, with its specification as Azure builds
it (conda `dependencies` and `pip:` entries of `context/conda_dependencies.yaml`, or the
inference image's requirements), the packages that only make sense in Azure (left out offline,
a documented choice), and the page each row was read from. `{{latest-pypi-version}}` pins in
the source become unpinned requirements: Azure resolves them to the newest release at build
time, which is what an unpinned requirement resolves to here.
"""

from __future__ import annotations

from typing import Final, TypedDict

_ASSETS = "https://github.com/Azure/azureml-assets/blob/main/assets"


class Row(TypedDict):
    python: str
    conda: list[str]
    pip: list[str]
    azure_only: list[str]
    source: str


# Azure-only packages: Azure ML's run-time, telemetry and profiling agents; nothing offline uses
# them (amlocal provides MLflow tracking and serving itself).
_AZURE_ONLY_TRAINING: Final = [
    "azureml-core",
    "azureml-defaults",
    "azureml-telemetry",
    "scikit-learn-intelex",
    "py-spy==0.3.12",
    "debugpy~=1.6.3",
    "ipykernel~=6.0",
    "tensorboard",
    "py-cpuinfo==5.0.0",
    "torch-tb-profiler~=0.4.0",
]

CURATED: Final[dict[str, Row]] = {
    "sklearn-1.5": {
        "python": "3.10",
        "conda": ["pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0", "pip"],
        "pip": [
            "scikit-learn~=1.5.0",
            "joblib~=1.2.0",
            "azureml-mlflow",
            "azureml-inference-server-http",
            "matplotlib~=3.5.0",
            "psutil~=5.8.0",
            "tqdm~=4.66.3",
        ],
        "azure_only": _AZURE_ONLY_TRAINING,
        "source": f"{_ASSETS}/training/general/environments/sklearn-1.5/context/conda_dependencies.yaml",
    },
    "sklearn-1.1": {
        "python": "3.9",
        "conda": ["pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"],
        "pip": ["scikit-learn~=1.1.0", "joblib~=1.2.0", "azureml-mlflow", "matplotlib~=3.5.0"],
        "azure_only": _AZURE_ONLY_TRAINING,
        "source": f"{_ASSETS}/training/general/environments/sklearn-1.1/context/conda_dependencies.yaml",
    },
    "sklearn-1.0": {
        "python": "3.9",
        "conda": ["pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"],
        "pip": ["scikit-learn~=1.0.0", "joblib~=1.2.0", "azureml-mlflow", "matplotlib~=3.5.0"],
        "azure_only": _AZURE_ONLY_TRAINING,
        "source": f"{_ASSETS}/training/general/environments/sklearn-1.0/context/conda_dependencies.yaml",
    },
    "lightgbm-3.3": {
        "python": "3.10",
        "conda": ["pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0"],
        "pip": [
            "scikit-learn~=1.5.1",
            "xgboost~=1.7.6",
            "lightgbm>=4.6.0",
            "azureml-mlflow",
            "matplotlib~=3.5.0",
        ],
        "azure_only": _AZURE_ONLY_TRAINING,
        "source": f"{_ASSETS}/training/general/environments/lightgbm-3.3/context/conda_dependencies.yaml",
    },
    "minimal-ubuntu22.04-py311-cpu-inference": {
        "python": "3.11",
        "conda": [],
        "pip": ["azureml-inference-server-http", "numpy==1.26.4"],
        "azure_only": [],
        "source": f"{_ASSETS}/inference/environments/minimal-ubuntu22.04-py311-cpu-inference/context/conda_dependencies.yaml",
    },
    "mlflow-ubuntu22.04-py312-cpu-inference": {
        "python": "3.12",
        "conda": [],
        "pip": ["azureml-inference-server-http", "mlflow", "azureml-ai-monitoring"],
        "azure_only": [],
        "source": f"{_ASSETS}/inference/environments/mlflow-ubuntu22.04-py312-cpu-inference/context/conda_dependencies.yaml",
    },
}
