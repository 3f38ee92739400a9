"""amlocal.packages reads versions from folder names; it must agree with importlib.metadata."""

from __future__ import annotations

from importlib import metadata

import pytest

from amlocal import packages


@pytest.mark.parametrize(
    "dist",
    [
        "azure-ai-ml",
        "mlflow",
        "MLflow",
        "scikit_learn",
        "PyYAML",
        "azureml.ai.monitoring",
        "amlocal",
    ],
)
def test_version_agrees_with_importlib_metadata(dist: str) -> None:
    assert packages.version(dist) == metadata.version(dist)


def test_a_missing_distribution_is_none() -> None:
    assert packages.version("no-such-distribution-here") is None
