"""End to end on 127.0.0.1: endpoints and deployments from the repository's YAML, served by
azmlinfsrv instances behind the front door, driven through the `amlocal` CLI and plain HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from online_support import (
    ENDPOINT_DIR,
    MLFLOW_ENDPOINT_DIR,
    cli,
    diabetes_workspace,
    kill_leftovers,
    workspace_env,
)

ROW = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


class Endpoint:
    """A created endpoint: its port and keys, and raw HTTP calls through its front door."""

    def __init__(self, name: str) -> None:
        self.name = name
        show = cli("online-endpoint", "show", "-n", name)
        self.scoring_uri = show["scoring_uri"]
        self.port = int(re.search(r":(\d+)/", self.scoring_uri).group(1))
        self.keys = cli("online-endpoint", "get-credentials", "-n", name)

    def post(
        self, body: object, key: str | None = "primary", headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {self.keys.get(key + 'Key', key)}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/score", body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def status(self) -> dict:
        from amlocal.endpoints.verbs import online_daemon
        from amlocal.workspace import Workspace

        return online_daemon.control(Workspace(), self.name, "status")


def _log_count(home: Path, endpoint: str, deployment: str) -> int:
    log = home / "endpoints" / endpoint / "deployments" / deployment / "instance-0.log"
    return log.read_text().count("POST /score 200")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A workspace with the diabetes model (v1) and the score environment registered."""
    home = tmp_path_factory.mktemp("online")
    with workspace_env(home) as ws:
        model, _ = diabetes_workspace(ws)
        try:
            yield home, model
        finally:
            for name in ("diabetes", "diabetes-mlflow", "slow", "diabetes-k8s"):
                try:
                    cli("online-endpoint", "delete", "-n", name, "--yes", ok=False)
                except Exception as exc:  # still kill whatever is left, below
                    print(f"delete {name}: {exc!r}")
            leftovers = kill_leftovers(home)
    assert leftovers == [], "processes left behind after delete"


@pytest.fixture(scope="module")
def diabetes(home):
    """The repository's endpoint with blue (all traffic) and green (0 %)."""
    cli("online-endpoint", "create", "-f", str(ENDPOINT_DIR / "endpoint.yml"))
    blue = cli("online-deployment", "create", "-f", str(ENDPOINT_DIR / "blue.yml"), "--all-traffic")
    assert blue["provisioning_state"] == "Succeeded"
    green = cli("online-deployment", "create", "-f", str(ENDPOINT_DIR / "green.yml"))
    assert green["provisioning_state"] == "Succeeded"
    return Endpoint("diabetes")


def test_show_and_list(diabetes):
    show = cli("online-endpoint", "show", "-n", "diabetes")
    assert show["provisioning_state"] == "Succeeded"
    assert show["traffic"] == {"blue": 100, "green": 0}
    assert show["scoring_uri"].startswith("http://127.0.0.1:")
    assert [e["name"] for e in cli("online-endpoint", "list")].count("diabetes") == 1
    deps = cli("online-deployment", "list", "-e", "diabetes")
    assert {d["name"] for d in deps} == {"blue", "green"}
    dep = cli("online-deployment", "show", "-n", "green", "-e", "diabetes")
    assert dep["provisioning_state"] == "Succeeded"
    assert dep["model"] == "azureml:diabetes-model:1"


def test_invoke_cli_matches_in_process(home, diabetes):
    _, model = home
    out = cli(
        "online-endpoint",
        "invoke",
        "-n",
        "diabetes",
        "-r",
        str(ENDPOINT_DIR / "sample-request.json"),
    )
    rows = json.loads((ENDPOINT_DIR / "sample-request.json").read_text())["data"]
    import pandas as pd

    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS))
    np.testing.assert_allclose(json.loads(out), expected, rtol=1e-9)
    out = cli(
        "online-endpoint",
        "invoke",
        "-n",
        "diabetes",
        "--deployment-name",
        "green",
        "-r",
        str(ENDPOINT_DIR / "sample-request.json"),
    )
    np.testing.assert_allclose(json.loads(out), expected, rtol=1e-9)


def test_http_contract(home, diabetes):
    _, model = home
    status, headers, body = diabetes.post({"data": [ROW]})
    assert status == 200
    assert headers["azureml-model-deployment"] == "blue"
    uuid.UUID(headers["x-request-id"])  # a fresh GUID
    import pandas as pd

    np.testing.assert_allclose(
        json.loads(body), model.predict(pd.DataFrame([ROW], columns=COLUMNS))
    )
    records = [dict(zip(COLUMNS, ROW, strict=True))]
    assert diabetes.post({"data": records})[2] == body
    assert diabetes.post({"data": [ROW]}, key="secondary")[0] == 200
    client_id = diabetes.post({"data": [ROW]}, headers={"x-ms-client-request-id": "ab$c" * 20})[1]
    assert client_id["x-ms-client-request-id"] == ("abc" * 20)[:40]


def test_auth(diabetes):
    assert diabetes.post({"data": [ROW]}, key=None)[0] == 401
    assert diabetes.post({"data": [ROW]}, key="not-a-key")[0] == 401
    status, _, _ = diabetes.post({"data": [ROW]}, headers={"Authorization": "Basic xyz"}, key=None)
    assert status == 401


def test_model_errors_are_424_with_model_status(diabetes):
    status, headers, body = diabetes.post(b'{"data": [[1, 2')
    assert status == 424
    assert headers["ms-azureml-model-error-statuscode"] == "400"
    assert headers["ms-azureml-model-error-reason"] == "BAD REQUEST"
    assert "could not be decoded as JSON" in json.loads(body)["message"]
    status, headers, body = diabetes.post({"data": [[1.0, 2.0, 3.0]]})
    assert (status, headers["ms-azureml-model-error-statuscode"]) == (424, "400")
    message = json.loads(body)["message"]
    assert "expected 10 features" in message and "'s6'" in message
    status, headers, body = diabetes.post({"data": [{"age": 1}]})
    assert status == 424 and "missing" in json.loads(body)["message"]
    status, headers, body = diabetes.post({"rows": [ROW]})  # the parameter is missing
    assert (status, headers["ms-azureml-model-error-statuscode"]) == (424, "400")
    # Python's JSON parser takes NaN and Infinity; score.py answers 400 naming the cell.
    status, headers, body = diabetes.post(
        b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, NaN, 3, 4, 5, 6, 7, 8, 9, 10]]}'
    )
    assert (status, headers["ms-azureml-model-error-statuscode"]) == (424, "400")
    assert "row 1: 'sex' must be a finite number" in json.loads(body)["message"]
    bad = [dict(zip(COLUMNS, ROW, strict=True)) | {"bmi": None}]
    status, headers, body = diabetes.post({"data": bad})
    assert (status, headers["ms-azureml-model-error-statuscode"]) == (424, "400")
    assert "row 0: 'bmi' must be a finite number" in json.loads(body)["message"]


def test_swagger_describes_payload(diabetes):
    conn = http.client.HTTPConnection("127.0.0.1", diabetes.port, timeout=10)
    conn.request(
        "GET", "/swagger.json", headers={"Authorization": f"Bearer {diabetes.keys['primaryKey']}"}
    )
    resp = conn.getresponse()
    swagger = json.loads(resp.read())
    conn.close()
    assert resp.status == 200
    example = swagger["definitions"]["ServiceInput"]["example"]
    assert example["data"] == [ROW]


def test_header_routing_and_missing_deployment(diabetes):
    status, headers, _ = diabetes.post(
        {"data": [ROW]}, headers={"azureml-model-deployment": "green"}
    )
    assert (status, headers["azureml-model-deployment"]) == (200, "green")
    status, _, _ = diabetes.post({"data": [ROW]}, headers={"azureml-model-deployment": "nope"})
    assert status == 404


def test_traffic_split(diabetes):
    cli("online-endpoint", "update", "-n", "diabetes", "--traffic", "blue=70 green=30")
    n = 300
    with ThreadPoolExecutor(4) as pool:
        served = list(
            pool.map(
                lambda _: diabetes.post({"data": [ROW]})[1]["azureml-model-deployment"], range(n)
            )
        )
    green = served.count("green")
    sigma = (n * 0.3 * 0.7) ** 0.5
    assert abs(green - 0.3 * n) < 4.5 * sigma, f"green served {green}/{n}"
    cli("online-endpoint", "update", "-n", "diabetes", "--traffic", "blue=0 green=0")
    assert diabetes.post({"data": [ROW]})[0] == 404  # nothing takes traffic
    assert diabetes.post({"data": [ROW]}, headers={"azureml-model-deployment": "blue"})[0] == 200
    cli("online-endpoint", "update", "-n", "diabetes", "--traffic", "blue=100")


def test_traffic_rules(diabetes):
    _, code = cli("online-endpoint", "update", "-n", "diabetes", "--traffic", "blue=60", ok=False)
    assert code == 2  # must total 100
    _, code = cli(
        "online-endpoint", "update", "-n", "diabetes", "--mirror-traffic", "blue=10", ok=False
    )
    assert code == 2  # blue takes live traffic
    _, code = cli("online-deployment", "delete", "-n", "blue", "-e", "diabetes", "--yes", ok=False)
    assert code == 2  # a deployment taking traffic cannot be deleted


def test_mirror_traffic(home, diabetes):
    root, _ = home
    cli(
        "online-endpoint",
        "update",
        "-n",
        "diabetes",
        "--traffic",
        "blue=100",
        "--mirror-traffic",
        "green=50",
    )
    before = _log_count(root, "diabetes", "green")
    n = 120
    for _ in range(n):
        status, headers, _ = diabetes.post({"data": [ROW]})
        assert (status, headers["azureml-model-deployment"]) == (200, "blue")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _log_count(root, "diabetes", "green") - before < n * 0.3:
        time.sleep(0.1)
    mirrored = _log_count(root, "diabetes", "green") - before
    assert 0.25 * n < mirrored < 0.75 * n, mirrored
    # Requests that name a deployment are never mirrored.
    time.sleep(0.5)
    before = _log_count(root, "diabetes", "green")
    for _ in range(30):
        diabetes.post({"data": [ROW]}, headers={"azureml-model-deployment": "blue"})
    time.sleep(0.5)
    assert _log_count(root, "diabetes", "green") == before
    cli("online-endpoint", "update", "-n", "diabetes", "--mirror-traffic", "green=0")


def test_keys_regenerate(diabetes):
    old = diabetes.keys["primaryKey"]
    cli("online-endpoint", "regenerate-keys", "-n", "diabetes", "--key-type", "primary")
    new = cli("online-endpoint", "get-credentials", "-n", "diabetes")
    assert new["primaryKey"] != old and new["secondaryKey"] == diabetes.keys["secondaryKey"]
    assert diabetes.post({"data": [ROW]}, key=old)[0] == 401
    assert diabetes.post({"data": [ROW]}, key=new["primaryKey"])[0] == 200
    diabetes.keys = new
    keyfile = Path(os.environ["AMLOCAL_HOME"]) / "endpoints" / "diabetes" / "keys.json"
    assert keyfile.stat().st_mode & 0o077 == 0


def test_killed_instance_is_restarted(diabetes):
    inst = diabetes.status()["deployments"]["blue"]["instances"][0]
    os.killpg(inst["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = diabetes.status()["deployments"]["blue"]["instances"][0]
        if now["restarts"] >= 1 and now["ready"]:
            break
        time.sleep(0.2)
    assert now["pid"] != inst["pid"] and now["ready"]
    assert diabetes.post({"data": [ROW]})[0] == 200
    logs = cli("online-deployment", "get-logs", "-n", "blue", "-e", "diabetes", "--lines", "200")
    assert "restarting" in logs


def test_dead_endpoint_restarts_on_invoke(home, diabetes):
    """After a reboot (every process gone), the next invoke brings the endpoint back."""
    pid = diabetes.status()["pid"]
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # instances follow (parent-death signal)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    out = cli(
        "online-endpoint",
        "invoke",
        "-n",
        "diabetes",
        "-r",
        str(ENDPOINT_DIR / "sample-request.json"),
    )
    assert len(json.loads(out)) == 2
    assert diabetes.status()["pid"] != pid


def test_mlflow_no_code_deployment(home):
    _, model = home
    cli("online-endpoint", "create", "-f", str(MLFLOW_ENDPOINT_DIR / "endpoint.yml"))
    dep = cli(
        "online-deployment",
        "create",
        "-f",
        str(MLFLOW_ENDPOINT_DIR / "mlflow.yml"),
        "--all-traffic",
    )
    assert dep["provisioning_state"] == "Succeeded"
    ep = Endpoint("diabetes-mlflow")
    payload = json.loads((MLFLOW_ENDPOINT_DIR / "sample-request.json").read_text())
    status, _, body = ep.post(payload)
    assert status == 200
    import pandas as pd

    frame = pd.DataFrame(payload["input_data"]["data"], columns=payload["input_data"]["columns"])
    np.testing.assert_allclose(json.loads(body), model.predict(frame))
    status, headers, body = ep.post({"data": [ROW]})  # score.py's payload is not MLflow's
    assert (status, headers["ms-azureml-model-error-statuscode"]) == (424, "400")
    assert "input_data" in json.loads(body)["message"]
    cli("online-endpoint", "delete", "-n", "diabetes-mlflow", "--yes")


SLOW_SCORE = """
import json, os, time
def init():
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init failed on purpose: " + os.environ["FAIL_INIT"])
def run(raw):
    time.sleep(json.loads(raw).get("sleep", 0))
    return {"ok": True}
"""

SLOW_DEPLOYMENT = """
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: slow
model: azureml:diabetes-model:1
code_configuration: {{code: ./code, scoring_script: score.py}}
environment: azureml:diabetes-score:3
instance_type: Standard_DS3_v2
instance_count: 1
request_settings: {{request_timeout_ms: 1000, max_concurrent_requests_per_instance: 1}}
environment_variables: {env}
"""


@pytest.fixture(scope="module")
def slow(home, tmp_path_factory):
    d = tmp_path_factory.mktemp("slow")
    (d / "code").mkdir()
    (d / "code" / "score.py").write_text(SLOW_SCORE)
    (d / "endpoint.yml").write_text("name: slow\nauth_mode: key\n")
    (d / "sleepy.yml").write_text(SLOW_DEPLOYMENT.format(name="sleepy", env="{}"))
    (d / "broken.yml").write_text(
        SLOW_DEPLOYMENT.format(name="broken", env="{FAIL_INIT: kaboom-42}")
    )
    cli("online-endpoint", "create", "-f", str(d / "endpoint.yml"))
    cli("online-deployment", "create", "-f", str(d / "sleepy.yml"), "--all-traffic")
    return d, Endpoint("slow")


def test_too_many_requests_429(slow):
    _, ep = slow
    # Limit: 2 x max_concurrent_requests_per_instance (1) x instance_count (1) = 2 in flight.
    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda _: ep.post({"sleep": 0.6})[0], range(5)))
    assert statuses.count(429) >= 2, statuses
    assert 200 in statuses, statuses
    time.sleep(1.5)  # let the sync worker drain


def test_request_timeout_408(slow):
    _, ep = slow
    status, headers, body = ep.post({"sleep": 2.5})
    assert status == 408
    uuid.UUID(headers["x-request-id"])
    time.sleep(2)


def test_init_failure_fails_create_with_log(slow):
    d, _ = slow
    (out, code) = cli("online-deployment", "create", "-f", str(d / "broken.yml"), ok=False)
    assert code == 1
    show = cli("online-deployment", "show", "-n", "broken", "-e", "slow")
    assert show["provisioning_state"] == "Failed"
    logs = cli("online-deployment", "get-logs", "-n", "broken", "-e", "slow")
    assert "kaboom-42" in logs


def test_delete_leaves_no_process(home, slow):
    root, _ = home
    cli("online-endpoint", "delete", "-n", "slow", "--yes")
    assert not (root / "endpoints" / "slow").exists()
    _, code = cli("online-endpoint", "show", "-n", "slow", ok=False)
    assert code == 3


def test_kubernetes_endpoint_serves_like_a_managed_one(home, diabetes):
    """endpoints/online/diabetes-k8s/: kubernetesOnline* YAML loads, is recorded with its
    cluster keys, and serves the same predictions as the managed endpoint."""
    k8s = ENDPOINT_DIR.parent / "diabetes-k8s"
    ep = cli("online-endpoint", "create", "-f", str(k8s / "endpoint.yml"))
    assert (ep["kind"], ep["compute"]) == ("K8S", "azureml:k8s-compute")
    dep = cli("online-deployment", "create", "-f", str(k8s / "blue.yml"), "--all-traffic")
    assert dep["type"] == "kubernetes" and dep["provisioning_state"] == "Succeeded"
    assert dep["scale_settings"]["max_instances"] == 3
    assert dep["resources"]["requests"]["memory"] == "1Gi"
    request = str(k8s / "sample-request.json")
    ours = cli("online-endpoint", "invoke", "-n", "diabetes-k8s", "-r", request)
    managed = cli("online-endpoint", "invoke", "-n", "diabetes", "-r", request)
    assert json.loads(ours) == json.loads(managed)
