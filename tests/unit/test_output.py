"""`--query` and `-o`: real JMESPath and az's tsv/table rules (knack's output module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

from amlocal.output import QueryError, query, render, table, tsv

REPO = Path(__file__).resolve().parents[2]
ARM = (
    "/subscriptions/local/resourceGroups/local/providers/Microsoft.MachineLearningServices/"
    "workspaces/local/onlineEndpoints/"
)
ENDPOINTS = [
    {
        "name": name,
        "id": ARM + name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "scoring_uri": f"http://127.0.0.1:5001/{name}/score",
        "openapi_uri": f"http://127.0.0.1:5001/{name}/swagger.json",
        "swagger_uri": f"http://127.0.0.1:5001/{name}/swagger.json",
        "auth_mode": "key",
        "provisioning_state": status,
        "location": "local",
        "kind": "Managed",
        "description": "An endpoint with a description long enough to overflow any table row.",
        "traffic": {"blue": 100},
        "tags": {},
    }
    for name, status in (("diabetes", "Succeeded"), ("digits", "Updating"))
]


def test_filters_projections_and_functions_are_real_jmespath() -> None:
    assert query(ENDPOINTS, "[?name=='digits'].scoring_uri") == [
        "http://127.0.0.1:5001/digits/score"
    ]
    assert query(ENDPOINTS, "[].{n:name,s:provisioning_state}") == [
        {"n": "diabetes", "s": "Succeeded"},
        {"n": "digits", "s": "Updating"},
    ]
    assert query(ENDPOINTS, "length(@)") == 2
    assert query(ENDPOINTS, "[0].traffic.blue") == 100
    assert query(ENDPOINTS, "sort_by(@, &provisioning_state)[-1].name") == "digits"
    with pytest.raises(QueryError, match="length"):
        query(ENDPOINTS, "length(`5`)")


def test_tsv_follows_az() -> None:
    # A query-built object keeps the query's order; the command's own objects are sorted.
    built = query(ENDPOINTS, "[].{s:provisioning_state,n:name}")
    assert tsv(built) == "Succeeded\tdiabetes\nUpdating\tdigits"
    assert tsv({"b": 1, "a": "x", "c": {"k": 1}, "d": [1, 2, 3], "e": True}) == "x\t1\t\t3\tTrue"
    assert tsv(query(ENDPOINTS, "length(@)")) == "2"
    assert tsv([True, None, "a b"]) == "true\nNone\na b"
    assert render(query(ENDPOINTS, "[?name=='nope'] | [0]"), "tsv") == ""  # null: nothing


def test_table_leaves_out_the_arm_id_and_fits_120_columns() -> None:
    text = table(ENDPOINTS)
    lines = text.splitlines()
    assert "/subscriptions/" not in text and "Microsoft.MachineLearningServices" not in text
    assert max(map(len, lines)) <= 120, text
    assert "Name" in lines[0].split() and "diabetes" in lines[2] and "digits" in lines[3]
    assert lines[0].startswith("Auth_mode")  # no query: keys sorted, first letter capitalized
    # With a query the columns come in the query's order, named by it.
    built = query(ENDPOINTS, "[].{Endpoint:name,State:provisioning_state}")
    assert table(built, sort_keys=False).splitlines()[0].split() == ["Endpoint", "State"]
    assert table(query(ENDPOINTS, "length(@)")).splitlines() == ["Result", "------", "2"]


def test_yaml_of_a_query_result() -> None:
    out = render(OrderedDict([("b", 1), ("a", 2)]), "yaml")
    assert out.splitlines() == ["b: 1", "a: 2"]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLOCAL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "amlocal.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.subprocess
def test_cli_query_and_bad_query(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert _cli(home, "data", "create", "-f", "data/diabetes.yml", "-o", "none").returncode == 0
    r = _cli(home, "data", "list", "--query", "[?name=='diabetes'].{n:name,v:latest_version}")
    assert r.returncode == 0 and json.loads(r.stdout) == [{"n": "diabetes", "v": "1"}]
    r = _cli(home, "data", "list", "--query", "length(@)", "-o", "tsv")
    assert (r.returncode, r.stdout) == (0, "1\n")
    r = _cli(home, "data", "list", "--query", "[?name=='diabetes'")
    assert r.returncode == 2 and "--query" in r.stderr and r.stdout == ""
    r = _cli(home, "data", "list", "--query", "length(name)")
    assert r.returncode == 2 and "length()" in r.stderr


@pytest.mark.subprocess
def test_version(tmp_path: Path) -> None:
    r = _cli(tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.startswith("amlocal ")
    assert "mlflow" in r.stdout and "azure-ai-ml" in r.stdout and "Python" in r.stdout
