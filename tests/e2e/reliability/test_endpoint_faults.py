"""A real endpoint under faults (issue 20, items 2, 5, 7, 9 and 10), on 127.0.0.1: instances
refuse requests that skip the front door; a body without a key is refused before it is read
and leaves no memory behind; a lost daemon.json does not stop the live instances; a damaged
instances.json does not stop the front door from starting; a restarting front door never
answers a valid key with 401."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import threading
import time

import psutil
import pytest
from online_support import ENDPOINT_DIR, cli, diabetes_workspace, kill_leftovers, workspace_env

ROW = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
BODY = json.dumps({"data": [ROW]}).encode()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("faults")
    with workspace_env(home) as ws:
        diabetes_workspace(ws)
        try:
            cli("online-endpoint", "create", "-f", str(ENDPOINT_DIR / "endpoint.yml"))
            cli(
                "online-deployment", "create", "-f", str(ENDPOINT_DIR / "blue.yml"), "--all-traffic"
            )
            show = cli("online-endpoint", "show", "-n", "diabetes")
            keys = cli("online-endpoint", "get-credentials", "-n", "diabetes")
            port = int(show["scoring_uri"].split(":")[2].split("/")[0])
            yield {"home": home, "port": port, "key": keys["primaryKey"], "ws": ws}
        finally:
            cli("online-endpoint", "delete", "-n", "diabetes", "--yes", ok=False)
            leftovers = kill_leftovers(home)
    assert leftovers == []


def post(port: int, key: str | None, body: bytes = BODY, timeout: float = 30) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request("POST", "/score", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def daemon_status(endpoint: dict) -> dict:
    from amlocal.endpoints.verbs import online_daemon

    return online_daemon.control(endpoint["ws"], "diabetes", "status")


def test_instances_answer_only_their_front_door(endpoint: dict) -> None:
    assert post(endpoint["port"], endpoint["key"]) == 200
    inst = daemon_status(endpoint)["deployments"]["blue"]["instances"][0]
    for method, path in (("POST", "/score"), ("GET", "/"), ("GET", "/swagger.json")):
        conn = http.client.HTTPConnection("127.0.0.1", inst["port"], timeout=10)
        conn.request(method, path, body=BODY if method == "POST" else None)
        assert conn.getresponse().status == 401, (method, path)
        conn.close()
    assert post(endpoint["port"], endpoint["key"]) == 200  # probes still pass: still ready
    assert daemon_status(endpoint)["deployments"]["blue"]["instances"][0]["ready"]


def test_bad_values_are_the_clients_400_never_a_500(endpoint: dict) -> None:
    cases = {
        "an int": b'{"data": 5}',
        "a string": b'{"data": "abc"}',
        "a 400-digit integer": b'{"data": [[' + b"9" * 400 + b"]]}",
        "1e308 (a NaN prediction)": json.dumps({"data": [[1e308] * 10]}).encode(),
        "numbers nested 100,000 deep": b'{"data": ' + b"[" * 100_000 + b"5" + b"]" * 100_000 + b"}",
        # issue 32: json.loads raises ValueError, not JSONDecodeError, for these
        "a 5,000-digit integer": b'{"data": [[' + b"9" * 5000 + b"]]}",
        "invalid UTF-8": b'{"data": [[1, 2, "\xff\xfe"]]}',
        "a gzip body": gzip.compress(BODY),
    }
    for what, body in cases.items():
        conn = http.client.HTTPConnection("127.0.0.1", endpoint["port"], timeout=30)
        conn.request(
            "POST",
            "/score",
            body=body,
            headers={
                "Authorization": f"Bearer {endpoint['key']}",
                "Content-Type": "application/json",
            },
        )
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        assert resp.status == 424, (what, resp.status, text)  # Azure's status for a model 4xx
        assert resp.getheader("ms-azureml-model-error-statuscode") == "400", (what, text)


def test_a_big_body_without_a_key_is_refused_unread(endpoint: dict) -> None:
    front = psutil.Process(daemon_status(endpoint)["pid"])
    before = front.memory_info().rss
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", endpoint["port"]), timeout=10) as s:
            s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n")
            s.sendall(b"\0" * (4 * 1024 * 1024))  # some of the body, as a client would
            assert s.recv(65536).startswith(b"HTTP/1.1 401 ")
    assert front.memory_info().rss - before < 50 * 1024 * 1024


def test_a_lost_daemon_file_keeps_the_live_front_door(endpoint: dict) -> None:
    from amlocal.endpoints import paths

    status = daemon_status(endpoint)
    paths.daemon_file(endpoint["home"], "diabetes").unlink()
    started = time.monotonic()
    show = cli("online-endpoint", "show", "-n", "diabetes")
    assert show["provisioning_state"] == "Succeeded"
    assert time.monotonic() - started < 20
    after = daemon_status(endpoint)
    assert after["pid"] == status["pid"]
    assert (
        after["deployments"]["blue"]["instances"][0]["pid"]
        == (status["deployments"]["blue"]["instances"][0]["pid"])
    )
    assert post(endpoint["port"], endpoint["key"]) == 200


def test_a_restarting_front_door_never_401s_a_valid_key(endpoint: dict) -> None:
    from amlocal.endpoints import paths

    pid = daemon_status(endpoint)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (paths.endpoint_dir(endpoint["home"], "diabetes") / "instances.json").write_text("5")
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        end = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < end and len(statuses) < 2000:
            try:
                statuses.append(post(endpoint["port"], endpoint["key"], timeout=60))
            except OSError:  # nothing listening yet
                time.sleep(0.02)

    t = threading.Thread(target=hammer)
    t.start()
    try:
        show = cli("online-endpoint", "show", "-n", "diabetes")  # starts the front door
        assert show["provisioning_state"] == "Succeeded"
        deadline = time.monotonic() + 30
        while 200 not in statuses and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join()
    assert 200 in statuses and 401 not in statuses, sorted(set(statuses))


def test_show_during_a_graceful_stop_starts_the_front_door_anew(endpoint: dict) -> None:
    """`show` while the front door stops gracefully (SIGTERM: its instances go too) waits for
    it and starts it again, or says to retry; never a ConnectionRefusedError traceback
    (#20 item 9). The endpoint then serves as before."""
    pid = daemon_status(endpoint)["pid"]
    os.kill(pid, signal.SIGTERM)
    show, code = cli("online-endpoint", "show", "-n", "diabetes", ok=False)
    assert code in (0, 1), (code, show)  # 1: "run the command again", as az says on a 409
    show = cli("online-endpoint", "show", "-n", "diabetes")
    assert show["provisioning_state"] == "Succeeded"
    assert daemon_status(endpoint)["pid"] != pid
    deadline = time.monotonic() + 60
    status = 0
    while status != 200 and time.monotonic() < deadline:
        try:
            status = post(endpoint["port"], endpoint["key"])
        except OSError:
            time.sleep(0.1)
    assert status == 200
