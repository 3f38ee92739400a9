"""Explicit model versions as Azure takes them: any string, in any order, `@latest` the most
recently created, through the real CLI and the workspace's MLflow registry. Fixtures:
tests/fixtures/model-versions/ (register.sh is written for `az ml`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cli_support import Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "model-versions"


def _project(tmp_path: Path) -> Project:
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    return Project(tmp_path)


def test_az_script_registers_random_and_string_versions(tmp_path: Path) -> None:
    project = _project(tmp_path)
    r = project.az_script("register.sh", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    stamp, rand = (tmp_path / "given.txt").read_text().split()
    assert (tmp_path / "latest.txt").read_text().strip() == "v2-beta"
    assert (tmp_path / "versions.txt").read_text().split() == ["v2-beta", rand, stamp]
    assert (tmp_path / "downloaded" / "fid-versions" / "b" / "weights.txt").read_text() == "b\n"

    # an unversioned create is one above the highest integer version
    auto = project.json("model", "create", "--name", "fid-versions", "--path", "models/a")
    assert auto["version"] == str(int(stamp) + 1)
    shown = project.json("model", "show", "--name", "fid-versions", "--version", rand)
    assert shown["version"] == rand and "azureml.version" not in shown["tags"]
    listed = project.json("model", "list")
    assert {"name": "fid-versions", "latest_version": auto["version"]}.items() <= next(
        m for m in listed if m["name"] == "fid-versions"
    ).items()


def test_string_versions_resolve_in_jobs_and_stay_immutable(project: Project) -> None:
    project.write("m/one/weights.txt", "one")
    project.write("m/two/weights.txt", "two")
    first = project.json("model", "create", "-n", "fid-str", "-v", "2024-06-rc1", "-p", "m/one")
    second = project.json("model", "create", "-n", "fid-str", "-v", "1", "-p", "m/two")
    assert (first["version"], second["version"]) == ("2024-06-rc1", "1")
    project.write("m/one/weights.txt", "changed")
    r = project.run("model", "create", "-n", "fid-str", "-v", "2024-06-rc1", "-p", "m/one",
                    check=False)  # fmt: skip
    assert r.returncode == 2
    assert "fid-str:2024-06-rc1 already exists with different content" in r.stderr
    r = project.run("model", "create", "-n", "fid-str", "-v", "../up", "-p", "m/one", check=False)
    assert r.returncode == 2 and "'../up' is not a valid version" in r.stderr

    project.write(
        "job.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: cat ${{inputs.pinned}}/weights.txt ${{inputs.newest}}/weights.txt
        environment: azureml:testenv@latest
        inputs:
          pinned:
            type: custom_model
            path: azureml:fid-str:2024-06-rc1
          newest:
            type: custom_model
            path: azureml:fid-str@latest
        """,
    )
    job, r = project.create("job.yml")
    assert job["status"] == "Completed", r.stderr
    assert "onetwo" in (r.stdout + r.stderr).replace("\n", "")


def test_versions_registered_before_keep_their_mlflow_numbers(project: Project) -> None:
    """A store written before (versions untagged, as MLflow numbered them) keeps working, and
    so does a script's own `mlflow.register_model`."""
    project.write("m/weights.txt", "w")
    code = (
        "import mlflow, sys\n"
        "from mlflow.tracking import MlflowClient\n"
        "c = MlflowClient(sys.argv[1], sys.argv[1])\n"
        "c.create_registered_model('fid-old')\n"
        "for _ in range(2): c.create_model_version('fid-old', source=sys.argv[2])\n"
    )
    uri = f"sqlite:///{project.home / 'mlflow.db'}"
    project.run("model", "list")  # the workspace's store exists
    subprocess.run(
        [sys.executable, "-c", code, uri, str(project.root / "m")],
        check=True,
        env=project.env,
        timeout=120,
    )
    assert project.json("model", "show", "-n", "fid-old", "-v", "2")["version"] == "2"
    assert project.json("model", "show", "-n", "fid-old", "--label", "latest")["version"] == "2"
    new = project.json("model", "create", "-n", "fid-old", "-p", "m")
    assert new["version"] == "3"
    assert [m["version"] for m in project.json("model", "list", "-n", "fid-old")] == [
        "3",
        "2",
        "1",
    ]
