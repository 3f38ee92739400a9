"""`--local`, Microsoft's documented first deploy: a local endpoint's only deployment serves
every request (local endpoints have one deployment and no traffic rules), through the real
CLI, azmlinfsrv and the front door on 127.0.0.1. Fixtures: tests/fixtures/local-endpoint/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli_support import Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "local-endpoint"


def test_docs_local_deploy_script_serves_its_only_deployment(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    project = Project(tmp_path)
    project.env["AMLOCAL_ENVIRONMENTS"] = "project"  # serve in the project venv: offline
    try:
        r = project.az_script("deploy-local.sh")
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(json.loads((tmp_path / "response.json").read_text())) == [60.0, 10.0]
        assert (tmp_path / "logs.txt").read_text().strip()  # the instance's log
        assert project.json("online-endpoint", "show", "-n", "fid-local")["traffic"] == {
            "blue": 100
        }

        # a local endpoint has one deployment: a second one is the user's mistake
        r2 = project.run("online-deployment", "create", "--local", "-n", "green",
                         "-e", "fid-local", "-f", "blue-deployment.yml", check=False)  # fmt: skip
        assert r2.returncode == 2, r2.stderr
        assert "--local" in r2.stderr and "'blue'" in r2.stderr

        # a deployment made without --local takes no traffic (as on Azure); `invoke --local`
        # still reaches the endpoint's only deployment, as a local endpoint routes
        project.run("online-endpoint", "create", "-n", "fid-local-b", "-f", "endpoint.yml")
        project.run("online-deployment", "create", "-f", "blue-deployment.yml",
                    "-e", "fid-local-b")  # fmt: skip
        plain = project.run("online-endpoint", "invoke", "-n", "fid-local-b",
                            "-r", "sample-request.json", check=False)  # fmt: skip
        assert plain.returncode != 0 and "404" in plain.stderr
        local = project.json("online-endpoint", "invoke", "--local", "-n", "fid-local-b",
                             "-r", "sample-request.json")  # fmt: skip
        assert json.loads(local) == [60.0, 10.0]

        # `--mirror-traffic blue=0` ends the mirror: no 0 % entry is left behind
        project.run("online-endpoint", "update", "-n", "fid-local-b",
                    "--mirror-traffic", "blue=10")  # fmt: skip
        assert project.json("online-endpoint", "show", "-n", "fid-local-b")["mirror_traffic"] == {
            "blue": 10
        }
        project.run("online-endpoint", "update", "-n", "fid-local-b",
                    "--mirror-traffic", "blue=0")  # fmt: skip
        assert project.json("online-endpoint", "show", "-n", "fid-local-b")["mirror_traffic"] == {}
    finally:
        for name in ("fid-local", "fid-local-b"):
            project.run("online-endpoint", "delete", "-n", name, "--yes", check=False)
