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

from .test_online_e2e import ROW, Endpoint

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


# -- the Collector's batching transport and the agent's batch route (no endpoint) ----------
INPUTS = b'[{"age":59.0,"sex":2.0,"bmi":32.1}]'


def _headers(collection: str, trace: str, correlation: str) -> dict[str, str]:
    """What the library's MdcSender sends with a payload."""
    return {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "trace-id": trace,
        "ce-time": str(int(time.time())),
        "ce-type": f"azureml.inference.{collection}",
        "ce-collect-data-type": "pandas.core.frame.DataFrame",
        "ce-agent": "azureml-ai-monitoring/1.0.0",
        "ce-x-request-id": correlation,
        "ce-model-version": "default",
    }


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """An agent process for collections model_inputs/model_outputs of ep/blue."""
    from amlocal.endpoints.collector import Agent, runtime_spec

    home = tmp_path / "home"
    monkeypatch.setenv("AMLOCAL_HOME", str(home))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the agent runs this checkout's code
    dc = {"collections": {c: {"enabled": "True"} for c in ("model_inputs", "model_outputs")}}
    spec = runtime_spec(
        home, "ep", "blue", "/subscriptions/x/onlineEndpoints/ep/deployments/blue", dc
    )
    a = Agent(spec, "blue-0", home / "logs" / "instance-0.log")
    a.start()
    monkeypatch.setenv("AMLOCAL_MDC_TOKEN", a.token)  # what the instance's transport sends
    _wait_for(lambda: a.log_path.exists() and "on 127.0.0.1" in a.log_path.read_text(), 20)
    try:
        yield a, home
    finally:
        a.stop()


def _agent_records(home: Path, collection: str) -> list[dict]:
    root = home / "datastores" / "workspaceblobstore" / "modelDataCollector" / "ep" / "blue"
    return [
        json.loads(line)
        for f in sorted((root / collection).rglob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_batched_payloads_are_written_like_single_posts_and_flushed_on_stop(agent) -> None:
    """A batch (the transport's POST /modeldata/batch) lands as the same records the library's
    one-payload POST /modeldata/log makes; everything acknowledged is on disk after a
    graceful stop, before the agent's periodic flush."""
    import http.client

    from amlocal.endpoints.instance.collector_transport import BatchTransport

    a, home = agent
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    keyed = {**_headers("model_inputs", "t0", "r0"), "x-amlocal-mdc-token": a.token}
    c.request("POST", "/modeldata/log", body=INPUTS, headers=keyed)
    assert c.getresponse().status == 200
    t = BatchTransport("127.0.0.1", a.port, lambda: 1)  # the library's queue is never empty
    for i in range(1, 4):
        assert t.post(_headers("model_inputs", f"t{i}", f"r{i}"), INPUTS)[0] == 202
        assert t.post(_headers("model_outputs", f"o{i}", f"r{i}"), b'[{"predicted":1.5}]')[0] == 202
    assert t.flush()[0] == 200  # one post, six payloads
    a.stop()  # SIGTERM
    inputs, outputs = _agent_records(home, "model_inputs"), _agent_records(home, "model_outputs")
    assert [r["id"] for r in inputs] == ["t0", "t1", "t2", "t3"]
    assert [r["correlationid"] for r in outputs] == ["r1", "r2", "r3"]
    single, batched = inputs[0], inputs[1]
    assert list(single) == list(batched)  # the same fields, in the same order
    for key in (
        "specversion",
        "source",
        "type",
        "datacontenttype",
        "time",
        "data",
        "modelversion",
        "collectdatatype",
        "agent",
        "contentrange",
    ):
        assert single[key] == batched[key], key
    assert batched["data"] == [{"age": 59.0, "sex": 2.0, "bmi": 32.1}]
    assert "7 records written (2 posts)" in a.log_path.read_text()


def test_transport_drops_and_counts_when_the_agent_is_gone_or_hung(capsys) -> None:
    """Best effort: an unreachable or silent agent costs a failed post, then payloads are
    dropped at once (not each waiting on the agent) and counted on stderr."""
    import socket

    from amlocal.endpoints.instance.collector_transport import BatchTransport

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    t = BatchTransport("127.0.0.1", dead, lambda: 0)
    status, _ = t.post(_headers("model_inputs", "a", "r"), INPUTS)
    assert not 200 <= status < 300 and t.dropped == 1
    statuses = [t.post(_headers("model_inputs", str(i), "r"), INPUTS)[0] for i in range(50)]
    assert all(not 200 <= s < 300 for s in statuses) and t.dropped == 51
    assert t.conn is None and time.monotonic() < t.down_until  # no connection was tried
    assert "1 Collector payload(s) dropped" in capsys.readouterr().err
    with socket.socket() as hung:  # accepts, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        t = BatchTransport("127.0.0.1", hung.getsockname()[1], lambda: 0)
        t.timeout = 0.2
        assert not 200 <= t.post(_headers("model_inputs", "h", "r"), INPUTS)[0] < 300
        assert t.dropped == 1


def test_the_agent_takes_records_only_with_its_instance_token(agent) -> None:
    """Any local process could write into the collections (issue 32, item 7): without the
    token the agent answers 401 and writes nothing."""
    import http.client

    a, home = agent
    for token in (None, "wrong"):
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
        headers = _headers("model_inputs", f"x-{token}", "r")
        if token:
            headers["x-amlocal-mdc-token"] = token
        c.request("POST", "/modeldata/log", body=INPUTS, headers=headers)
        assert c.getresponse().status == 401
        c.close()
    a.stop()
    assert _agent_records(home, "model_inputs") == []
