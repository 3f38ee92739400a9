"""`make ui` serves the workspace's own MLflow store, wherever AMLOCAL_HOME puts it, and says
its URL; `Web View:` addresses a run in that UI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_ui_opens_the_store_amlocal_home_points_to(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    home = tmp_path / "moved"
    home.mkdir()
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    client.create_experiment("only-in-the-moved-store")
    port = _free_port()
    env = {**os.environ, "AMLOCAL_HOME": str(home), "UI_PORT": str(port)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "ui"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first and str(home / "mlflow.db") in first, first
        url = (
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
            "?experiment_name=only-in-the-moved-store"
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    found = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "UI did not start"
                time.sleep(0.5)
        assert found["experiment"]["name"] == "only-in-the-moved-store"
        assert (
            proc.stdout.readline().strip()
            == f"amlocal: MLflow UI ready at http://127.0.0.1:{port}/"
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_run_url_names_the_experiment_and_run(tmp_path: Path, monkeypatch) -> None:
    from mlflow import MlflowClient

    from amlocal import ui
    from amlocal.workspace import Workspace

    monkeypatch.setenv("AMLOCAL_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AMLOCAL_UI_PORT", "5123")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e")
    run = client.create_run(exp).info.run_id
    ws = Workspace()
    assert ui.run_url(ws, run) == f"http://127.0.0.1:5123/#/experiments/{exp}/runs/{run}"
    record = {"properties": {"mlflow.runId": run}}
    assert ui.job_url(ws, record) == ui.run_url(ws, run)
    assert ui.job_url(ws, {}) == "http://127.0.0.1:5123/"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:8080/")
    assert ui.job_url(Workspace(), {}) == "http://mlflow.example:8080/"


def test_make_ui_on_a_busy_port_fails_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = {**os.environ, "AMLOCAL_HOME": str(home), "UI_PORT": str(port)}
        env.pop("MLFLOW_TRACKING_URI", None)
        start = time.monotonic()
        r = subprocess.run(
            ["make", "-s", "-o", ".venv/.installed", "ui"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - start
    assert r.returncode != 0, r.stdout + r.stderr
    assert f"127.0.0.1:{port} is in use" in r.stderr and "UI_PORT" in r.stderr
    assert "ready" not in r.stdout
    assert elapsed < 30, elapsed  # not MLflow's 95 s inside server noise
    leftovers = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_links_honour_the_port_of_the_running_ui(tmp_path: Path, monkeypatch) -> None:
    from amlocal import ui
    from amlocal.workspace import Workspace

    monkeypatch.setenv("AMLOCAL_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AMLOCAL_UI_PORT", raising=False)
    (tmp_path / "ui.json").write_text(json.dumps({"pid": os.getpid(), "port": 5123}))
    assert ui.job_url(Workspace(), {}) == "http://127.0.0.1:5123/"
    (tmp_path / "ui.json").write_text(json.dumps({"pid": 2**22 + 12345, "port": 5123}))  # gone
    assert ui.job_url(Workspace(), {}) == "http://127.0.0.1:5000/"
