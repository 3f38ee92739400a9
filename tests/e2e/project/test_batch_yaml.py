"""Every batch YAML validates with azure-ai-ml, the code `az ml` runs: the batch endpoints and
deployments (model, MLflow no-code and pipeline-component), the parallel scoring pipeline,
the training pipeline component and the batch data asset."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlocal import loader
from tests.batch_support import ROOT

DEPLOYMENTS = sorted(
    p for p in (ROOT / "endpoints" / "batch").rglob("*.yml") if "endpoint" not in p.name
)
ENDPOINTS = sorted((ROOT / "endpoints" / "batch").rglob("endpoint.yml"))


@pytest.mark.parametrize("path", ENDPOINTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_batch_endpoint_validates(path: Path) -> None:
    entity = loader.load("batch-endpoint", path)
    loader.validate(entity, path)
    assert entity.auth_mode == "aad_token"


@pytest.mark.parametrize("path", DEPLOYMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_batch_deployment_validates(path: Path) -> None:
    entity = loader.load("batch-deployment", path)
    loader.validate(entity, path)
    endpoint = loader.load("batch-endpoint", path.parent / "endpoint.yml")
    assert entity.endpoint_name == endpoint.name  # the endpoint next to it


def test_parallel_pipeline_validates() -> None:
    path = ROOT / "pipelines" / "batch-score.yml"
    job = loader.load("job", path)
    loader.validate(job, path)
    node = job._to_dict()["jobs"]["score"]
    assert (
        node["type"] == "parallel" and node["task"]["append_row_to"] == "${{outputs.predictions}}"
    )


def test_training_pipeline_component_validates() -> None:
    path = ROOT / "pipelines" / "train-component.yml"
    component = loader.load("component", path)
    loader.validate(component, path)
    assert component.type == "pipeline"
    assert list(component.jobs) == ["prep", "train", "evaluate", "register"]


def test_batch_data_asset_validates() -> None:
    data = loader.load("data", ROOT / "data" / "diabetes-batch.yml")
    assert data.type == "uri_folder"
