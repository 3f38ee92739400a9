"""The data collector end to end: score.py's real Collector and payload logging, through a
real endpoint, into Azure's modelDataCollector layout; sampling; a dead agent."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from online_support import (
    REPO,
    cli,
    descendants_alive,
    diabetes_workspace,
    kill_leftovers,
    workspace_env,
)
from test_online_e2e import ROW, Endpoint

DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: dcol
model: azureml:diabetes-model:1
code_configuration:
  code: {code}
  scoring_script: score.py
environment: azureml:diabetes-score:3
instance_type: Standard_DS3_v2
instance_count: 1
environment_variables:
  WORKER_COUNT: "2"
request_settings:
  max_concurrent_requests_per_instance: 2
data_collector:
  collections:
    model_inputs:
      enabled: "True"
    model_outputs:
      enabled: "True"
{extra}
"""

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: dcol
auth_mode: key
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("collector")
    with workspace_env(home) as ws:
        diabetes_workspace(ws)
        (home / "endpoint.yml").write_text(ENDPOINT)
        code = REPO / "src" / "score"
        (home / "blue.yml").write_text(
            DEPLOYMENT.format(
                name="blue",
                code=code,
                extra='    request:\n      enabled: "True"\n    response:\n      enabled: "True"\n  rolling_rate: hour',
            )
        )
        (home / "half.yml").write_text(
            DEPLOYMENT.format(name="half", code=code, extra="  sampling_rate: 0.5")
        )
        cli("online-endpoint", "create", "-f", str(home / "endpoint.yml"))
        cli("online-deployment", "create", "-f", str(home / "blue.yml"), "--all-traffic")
        try:
            yield home
        finally:
            for sched in cli("schedule", "list"):  # the scheduler daemon exits once none is enabled
                cli("schedule", "disable", "-n", sched["name"], ok=False)
            cli("online-endpoint", "delete", "-n", "dcol", "--yes", ok=False)
            time.sleep(1.5)
            leftovers = kill_leftovers(home)
    assert leftovers == [], "processes left behind after delete"


def _records(home: Path, deployment: str, collection: str) -> list[dict]:
    root = (
        home
        / "datastores"
        / "workspaceblobstore"
        / "modelDataCollector"
        / "dcol"
        / deployment
        / collection
    )
    out = []
    for f in sorted(root.rglob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def _wait_for(fn, timeout: float = 20.0):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_collected_jsonl_layout_correlation_and_data_assets(home: Path) -> None:
    ep = Endpoint("dcol")
    rids = []
    for i in range(6):
        status, headers, body = ep.post({"data": [ROW, [v + i for v in ROW]]})
        assert status == 200, body
        rids.append(headers["x-request-id"])
    inputs = _wait_for(
        lambda: (
            len(_records(home, "blue", "model_inputs")) >= 6
            and _records(home, "blue", "model_inputs")
        )
    )
    outputs = _wait_for(
        lambda: (
            len(_records(home, "blue", "model_outputs")) >= 6
            and _records(home, "blue", "model_outputs")
        )
    )
    assert len(inputs) == 6 and len(outputs) == 6
    # Azure's layout: <collection>/YYYY/MM/DD/HH/<instance>.jsonl (rolling_rate: hour).
    files = sorted(
        (
            home
            / "datastores"
            / "workspaceblobstore"
            / "modelDataCollector"
            / "dcol"
            / "blue"
            / "model_inputs"
        ).rglob("*.jsonl")
    )
    rel = files[0].relative_to(files[0].parents[4])
    assert len(rel.parts) == 5 and rel.parts[0].isdigit() and len(rel.parts[0]) == 4
    rec = inputs[0]
    for field in (
        "specversion",
        "id",
        "source",
        "type",
        "datacontenttype",
        "time",
        "data",
        "correlationid",
        "contentrange",
        "agent",
    ):
        assert field in rec, field
    assert rec["type"] == "azureml.inference.model_inputs"
    assert rec["source"].endswith("/onlineEndpoints/dcol/deployments/blue")
    assert set(rec["data"][0]) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}
    # One correlation id per request, shared by its inputs and outputs.
    by_id = {o["correlationid"]: o for o in outputs}
    assert len(by_id) == 6
    for r in inputs:
        assert len(by_id[r["correlationid"]]["data"]) == len(r["data"]) == 2
    # Payload logging: request and response bodies, correlated by the x-request-id.
    reqs = _wait_for(
        lambda: len(_records(home, "blue", "request")) >= 6 and _records(home, "blue", "request")
    )
    resps = _wait_for(
        lambda: len(_records(home, "blue", "response")) >= 6 and _records(home, "blue", "response")
    )
    assert {r["correlationid"] for r in reqs} == set(rids) == {r["correlationid"] for r in resps}
    assert all(r["data"]["data"][0] == ROW for r in reqs) and all(
        isinstance(r["data"], list) for r in resps
    )
    # Each collection is a uri_folder data asset named <endpoint>-<deployment>-<collection>.
    asset = cli("data", "show", "-n", "dcol-blue-model_inputs", "-v", "1")
    assert asset["type"] == "uri_folder"
    assert asset["path"].endswith("modelDataCollector/dcol/blue/model_inputs")


def test_sampling_rate_half_collects_about_half(home: Path) -> None:
    cli("online-deployment", "create", "-f", str(home / "half.yml"))
    ep = Endpoint("dcol")
    n = 200
    for _ in range(n):
        status, _, body = ep.post({"data": [ROW]}, headers={"azureml-model-deployment": "half"})
        assert status == 200, body
    time.sleep(1.0)
    got = len(_records(home, "half", "model_inputs"))
    # Binomial(200, 0.5): mean 100, sd ~7; 60..140 is more than 5 sd either side.
    assert 60 <= got <= 140, got


def test_make_monitor_script_flags_shifted_traffic_only(home: Path) -> None:
    """scripts/monitor.py (make monitor) against real collected data: drift for shifted rows
    sent to one deployment, none for unshifted rows sent to another."""
    import subprocess

    (home / "calm.yml").write_text(
        DEPLOYMENT.format(name="calm", code=REPO / "src" / "score", extra="")
    )
    cli("online-deployment", "create", "-f", str(home / "calm.yml"))
    cli("data", "create", "-f", str(REPO / "data" / "diabetes.yml"))
    env = {**os.environ, "AML": f"{sys.executable} -m amlocal.cli", "PYTHONPATH": str(REPO)}
    outs = {}
    for variant, extra in (
        ("shifted", ["--deployment", "blue"]),
        ("calm", ["--no-shift", "--deployment", "calm"]),
    ):
        r = subprocess.run(
            [
                sys.executable,
                str(REPO / "scripts" / "monitor.py"),
                "--endpoint",
                "dcol",
                "--rows",
                "300",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        outs[variant] = r.stdout
    assert "signal input-drift (data_drift)" in outs["shifted"]
    line = next(ln for ln in outs["shifted"].splitlines() if ln.startswith("signal input-drift"))
    # blue also holds test 1's requests (ROW + i): bmi and bp drift, maybe more.
    assert {"bmi", "bp"} <= set(line.split("BREACHED for ")[1].split(", ")), line
    assert "ALERT" in outs["shifted"]
    assert "signal input-drift (data_drift): 300 production rows" in outs["calm"]
    assert "BREACH" not in outs["calm"] and "ALERT" not in outs["calm"]
    for name in ("monitor-dcol-blue", "monitor-dcol-calm"):
        cli("schedule", "disable", "-n", name)


def test_a_stopped_agent_does_not_fail_requests(home: Path) -> None:
    ep = Endpoint("dcol")
    agents = [
        p
        for p in descendants_alive("amlocal.endpoints.collector")
        if str(home).encode() in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert agents
    for pid in agents:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    before = len(_records(home, "blue", "model_inputs"))
    for _ in range(20):
        status, _, body = ep.post({"data": [ROW]})
        assert status == 200, body
    log = home / "endpoints" / "dcol" / "deployments" / "blue" / "instance-0.log"
    text = _wait_for(lambda: "dropped" in log.read_text() and log.read_text(), 10)
    assert "dropped" in text
    assert len(_records(home, "blue", "model_inputs")) == before
