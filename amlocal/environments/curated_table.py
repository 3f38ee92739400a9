"""Azure's curated environments as published in Azure/azureml-assets (read 2026-12).

Data only: one row per curated environment folder name, with its specification as Azure builds
it (conda `dependencies` and `pip:` entries of `context/conda_dependencies.yaml`, or the
inference image's requirements), the packages that only make sense in Azure (left out offline,
a documented choice), and the page each row was read from. `{{latest-pypi-version}}` pins in
the source become unpinned requirements, resolved as Azure resolved them: as of the image's
publication. Each row records the image version it replicates (`image`: Azure's release tag
`environment/<asset>/<version>`, whose commit holds the folder with those pins resolved) and
`built`, that tag's date, which uv resolves the row as of (`--exclude-newer`). At these dates uv
picks the very versions Azure's release commits pin for every `{{latest-pypi-version}}` entry
(25 of 25 checked; docs/local-vs-azure.md). Repository snapshot read: HEAD of 2026-07-23.
"""

from __future__ import annotations

from typing import Final, TypedDict

_ASSETS = "https://github.com/Azure/azureml-assets/blob/main/assets"
_REPO = "https://github.com/Azure/azureml-assets"


class Row(TypedDict):
    python: str
    conda: list[str]
    pip: list[str]
    azure_only: list[str]
    source: str
    built: str  # RFC 3339 UTC: the release tag's date (uv's --exclude-newer)
    image: str  # the release tag, its commit and the released folder


def _release(asset: str, version: int, commit: str) -> str:
    """Where a curated image version's release is recorded: its tag and the folder (with the
    `{{latest-pypi-version}}` pins resolved) at the tagged commit."""
    return f"tag environment/{asset}/{version}: {_REPO}/tree/{commit}/latest/environment/{asset}"


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
        # the latest version (50) of the release tags
        "built": "2026-07-20T10:14:25Z",
        "image": _release("sklearn-1.5", 50, "9721fc5f81b81ec1cde1613d214a3fcec509ad55"),
    },
    "sklearn-1.1": {
        "python": "3.9",
        "conda": ["pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"],
        "pip": ["scikit-learn~=1.1.0", "joblib~=1.2.0", "azureml-mlflow", "matplotlib~=3.5.0"],
        "azure_only": _AZURE_ONLY_TRAINING,
        "source": f"{_ASSETS}/training/general/environments/sklearn-1.1/context/conda_dependencies.yaml",
        # the latest version (40); not rebuilt since
        "built": "2024-08-09T21:54:45Z",
        "image": _release("sklearn-1.1", 40, "ed6e73b081205e00a451c65594dc54eb529b308a"),
    },
    "sklearn-1.0": {
        "python": "3.9",
        "conda": ["pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"],
        "pip": ["scikit-learn~=1.0.0", "joblib~=1.2.0", "azureml-mlflow", "matplotlib~=3.5.0"],
        "azure_only": _AZURE_ONLY_TRAINING,
        "source": f"{_ASSETS}/training/general/environments/sklearn-1.0/context/conda_dependencies.yaml",
        # the latest version (41); not rebuilt since
        "built": "2024-08-09T21:54:45Z",
        "image": _release("sklearn-1.0", 41, "ed6e73b081205e00a451c65594dc54eb529b308a"),
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
        # the latest version (85)
        "built": "2026-07-23T10:22:02Z",
        "image": _release("lightgbm-3.3", 85, "858679deffba390bf700a28abcf69139631a276e"),
    },
    "minimal-ubuntu22.04-py311-cpu-inference": {
        "python": "3.11",
        "conda": [],
        "pip": ["azureml-inference-server-http", "numpy==1.26.4"],
        "azure_only": [],
        "source": f"{_ASSETS}/inference/environments/minimal-ubuntu22.04-py311-cpu-inference/context/conda_dependencies.yaml",
        # published as asset minimal-py311-inference; version 6 is the only one whose pip list
        # is this row's (numpy==1.26.4; later versions add azure-storage-blob, azure-identity)
        "built": "2024-06-11T19:00:10Z",
        "image": _release("minimal-py311-inference", 6, "1ac85c5cfa40e9e7b9987d0c7d34267b9824488c"),
    },
    "mlflow-ubuntu22.04-py312-cpu-inference": {
        "python": "3.12",
        "conda": [],
        "pip": ["azureml-inference-server-http", "mlflow", "azureml-ai-monitoring"],
        "azure_only": [],
        "source": f"{_ASSETS}/inference/environments/mlflow-ubuntu22.04-py312-cpu-inference/context/conda_dependencies.yaml",
        # published as asset mlflow-py312-inference; versions 2-7 have this row's pip list
        # (8 onwards add scikit-learn, pandas...): dated by the last of them
        "built": "2025-03-05T15:50:36Z",
        "image": _release("mlflow-py312-inference", 7, "aa063f8f417d5488e5c7ddd885188e4101778b81"),
    },
}
