"""Registry references: the forms jobs and deployments write, and the malformed ones."""

from __future__ import annotations

import pytest

from amlocal.errors import InvalidInput
from amlocal.registries.refs import RegistryRef, is_local, parse


def test_the_forms_of_a_registry_reference() -> None:
    base = "azureml://registries/shared"
    assert parse(f"{base}/models/m/versions/3") == RegistryRef("shared", "model", "m", "3", None)
    assert parse(f"{base}/environments/e/labels/latest") == RegistryRef(
        "shared", "environment", "e", None, "latest"
    )
    assert parse(f"{base}/components/c@latest") == RegistryRef(
        "shared", "component", "c", None, "latest"
    )
    assert parse(f"{base}/data/d/versions/1").local == "azureml:d:1"  # type: ignore[union-attr]
    assert parse(f"{base}/models/m").local == "azureml:m@latest"  # type: ignore[union-attr]
    assert parse("azureml:m:1") is None and parse(None) is None


def test_malformed_references_and_the_system_registry() -> None:
    # the docs' typo `/component/` (singular) is refused naming the four kinds
    with pytest.raises(InvalidInput, match="models,components,environments,data"):
        parse("azureml://registries/r/component/c/versions/1")
    with pytest.raises(InvalidInput):
        parse("azureml://registries/r/models/m/versions/1/extra")
    assert is_local("azureml://registries/r/models/m/versions/1")
    assert not is_local("azureml://registries/azureml/environments/sklearn-1.5/labels/latest")
