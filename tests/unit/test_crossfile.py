"""amlocal.crossfile: the checks across YAML files, on documents written to a temp folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from amlocal.crossfile import check_endpoint, check_pipeline, cross_check
from amlocal.yamldocs import Doc

SCHEMA = "https://azuremlschemas.azureedge.net/latest/{}.schema.json"


def _doc(path: Path, kind: str, schema: str, raw: dict[str, object]) -> Doc:
    raw = {"$schema": SCHEMA.format(schema), **raw}
    path.write_text(yaml.safe_dump(raw))
    return Doc(path=path, kind=kind, schema=schema, raw=raw)


COMPONENT = {
    "type": "command",
    "inputs": {"n": {"type": "integer"}},
    "outputs": {"model": {"type": "uri_folder"}},
    "command": "python a.py",
}


def _pipeline(tmp_path: Path, jobs: dict[str, object]) -> Doc:
    (tmp_path / "c.yml").write_text(yaml.safe_dump(COMPONENT))
    return _doc(
        tmp_path / "p.yml",
        "job",
        "pipelineJob",
        {"type": "pipeline", "inputs": {"n": 3, "name": "x"}, "jobs": jobs},
    )


def test_a_pipeline_whose_bindings_fit_has_no_problem(tmp_path: Path) -> None:
    doc = _pipeline(
        tmp_path,
        {
            "a": {"component": "./c.yml", "inputs": {"n": "${{parent.inputs.n}}"}},
            "b": {"component": "./c.yml", "inputs": {"n": "${{parent.inputs.n}}"}},
        },
    )
    assert list(check_pipeline(doc)) == []


def test_pipeline_problems_name_the_key(tmp_path: Path) -> None:
    doc = _pipeline(
        tmp_path,
        {
            "a": {"component": "./missing.yml"},
            "b": {"component": "./c.yml", "inputs": {"zz": 1}},
            "c": {"component": "./c.yml", "inputs": {"n": "${{parent.inputs.nope}}"}},
            "d": {"component": "./c.yml", "inputs": {"n": "${{parent.inputs.name}}"}},
            "e": {"component": "./c.yml", "inputs": {"n": "${{parent.jobs.ghost.outputs.o}}"}},
        },
    )
    found = {p.key: p.message for p in check_pipeline(doc)}
    assert found["jobs.a.component"] == "./missing.yml does not exist"
    assert "no input 'zz'" in found["jobs.b.inputs.zz"]
    assert "not declared" in found["jobs.c.inputs.n"]
    assert "type mismatch" in found["jobs.d.inputs.n"]
    assert "step 'ghost'" in found["jobs.e.inputs.n"]


def test_endpoint_traffic_must_name_deployments_and_sum_to_100(tmp_path: Path) -> None:
    _doc(
        tmp_path / "blue.yml",
        "online-deployment",
        "managedOnlineDeployment",
        {"name": "blue", "endpoint_name": "ep"},
    )
    ep = _doc(
        tmp_path / "endpoint.yml",
        "online-endpoint",
        "managedOnlineEndpoint",
        {"name": "ep", "traffic": {"blue": 60, "green": 30}},
    )
    found = {p.key: p.message for p in check_endpoint(ep, {})}
    assert "no deployment 'green'" in found["traffic.green"]
    assert found["traffic"] == "sums to 90; Azure ML requires 0 or 100"


def test_cross_check_reports_a_deployment_naming_another_endpoint(tmp_path: Path) -> None:
    ep = _doc(tmp_path / "e.yml", "online-endpoint", "managedOnlineEndpoint", {"name": "ep"})
    dep = _doc(
        tmp_path / "d.yml",
        "online-deployment",
        "managedOnlineDeployment",
        {"name": "blue", "endpoint_name": "other"},
    )
    problems = cross_check([ep, dep], tmp_path)
    assert any(p.key == "endpoint_name" and "does not match" in p.message for p in problems)
