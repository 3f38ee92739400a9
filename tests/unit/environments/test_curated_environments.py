"""Curated environment references in both of Azure's forms resolve to the published spec."""

from __future__ import annotations

import pytest

from amlocal.environments import curated


@pytest.mark.parametrize(
    ("ref", "version", "label"),
    [
        ("azureml:AzureML-sklearn-1.5@latest", None, "latest"),
        ("azureml:AzureML-sklearn-1.5:33", "33", None),
        ("azureml://registries/azureml/environments/sklearn-1.5/labels/latest", None, "latest"),
        ("azureml://registries/azureml/environments/sklearn-1.5/versions/52", "52", None),
    ],
)
def test_both_forms_resolve_to_the_published_spec(
    ref: str, version: str | None, label: str | None
) -> None:
    parsed = curated.parse(ref)
    assert parsed is not None and (parsed.name, parsed.version, parsed.label) == (
        "sklearn-1.5",
        version,
        label,
    )
    spec = curated.lookup(ref)
    assert spec is not None and spec.python == "3.10" and "pandas~=1.5.3" in spec.conda
    deps = spec.conda_file()["dependencies"]
    assert deps[0] == "python=3.10" and "scikit-learn~=1.5.0" in deps[-1]["pip"]
    assert "azureml-core" not in deps[-1]["pip"] and "azureml-core" in spec.azure_only
    assert spec.source.startswith("https://github.com/Azure/azureml-assets/")


def test_not_curated_and_unknown_names() -> None:
    assert curated.lookup("azureml:my-env:1") is None
    assert curated.lookup("azureml://registries/someone/environments/x/versions/1") is None
    with pytest.raises(curated.UnknownCuratedEnvironment, match="AzureML-pytorch-2.0"):
        curated.lookup("azureml:AzureML-pytorch-2.0@latest")


def test_legacy_suffixed_name_keeps_its_python() -> None:
    spec = curated.lookup("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest")
    assert spec is not None and (spec.name, spec.python) == ("sklearn-1.0", "3.8")
