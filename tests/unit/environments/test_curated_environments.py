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


def test_every_row_records_its_image_date_and_release() -> None:
    """Each row says which published image it replicates and when that image was released."""
    from datetime import datetime

    from amlocal.environments.curated_table import CURATED

    for name, row in CURATED.items():
        built = datetime.fromisoformat(row["built"].replace("Z", "+00:00"))
        assert built.tzinfo is not None and built.year >= 2024, name
        assert row["image"].startswith("tag environment/"), name
        assert "https://github.com/Azure/azureml-assets/tree/" in row["image"], name
        spec = curated.specification(name)
        assert spec is not None and spec.built == row["built"], name


def test_curated_build_resolves_as_of_the_image_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every uv resolution of a curated environment's venv carries --exclude-newer <its date>,
    and the date is part of the venv's key; an ordinary environment has neither."""
    import subprocess
    from pathlib import Path

    from amlocal.environments import build
    from amlocal.environments import spec as speclib
    from amlocal.jobs import environments

    calls: list[list[str]] = []

    def fake_try(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(build, "_try", fake_try)
    env = environments.resolve(None, "azureml:AzureML-sklearn-1.5@latest", "job.yml")  # type: ignore[arg-type]
    wanted = environments._spec(env)
    assert wanted is not None and wanted.exclude_newer == "2026-07-20T10:14:25Z"
    build._install(
        "sklearn-1.5",
        Path("/nonexistent"),
        list(wanted.requirements),
        "3.11",
        None,
        wanted.exclude_newer,
    )
    assert calls and all(c[c.index("--exclude-newer") + 1] == "2026-07-20T10:14:25Z" for c in calls)
    calls.clear()
    build._install("plain", Path("/nonexistent"), ["six"], "3.11")
    assert calls and not any("--exclude-newer" in c for c in calls)
    undated = speclib.Spec(wanted.python, wanted.requirements, wanted.left_out, wanted.origin)
    assert undated.digest() != wanted.digest()  # a venv resolved today is not reused
