"""Named workspaces: `-w/-g` select one of the home's workspaces, each isolated; the home made
before named workspaces existed is the default workspace, read in place."""

from __future__ import annotations

import json

from cli_support import Project

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo hi > ${{outputs.o}}/hi.txt
environment: azureml:testenv@latest
experiment_name: ws
outputs:
  o:
    type: uri_folder
"""
DATA = """\
$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
name: words
version: "1"
type: uri_file
path: ./words.txt
"""
BATCH = """\
$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json
name: {name}
auth_mode: aad_token
"""


def test_workspace_verbs_defaults_and_refusals(home: Project) -> None:
    rows = home.json("workspace", "list", "--query", "[].[name, resource_group]")
    assert rows == [["local", "local"], ["dev", "rg-ml"], ["prod", "rg-ml"]]
    shown = home.json("workspace", "show", "-w", "dev", "-g", "rg-ml")
    assert shown["name"] == "dev"
    assert shown["id"].endswith(
        "/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/dev"
    )
    assert (
        home.run("workspace", "show", "-n", "prod", "-o", "tsv", "--query", "name").stdout
        == "prod\n"
    )
    # az configure --defaults workspace=...: the workspace used without -w
    assert home.run("configure", "--defaults", "workspace=prod", "group=rg-ml").returncode == 0
    assert home.json("workspace", "show", "--query", "name") == "prod"
    home.run("configure", "--defaults", "workspace=", "group=")
    assert home.json("workspace", "show", "--query", "name") == "local"
    # unknown workspace, wrong resource group, bad name: exit 2, naming the flag
    r = home.run("job", "list", "-w", "nope", check=False)
    assert r.returncode == 2 and "workspace 'nope' does not exist" in r.stderr
    r = home.run("job", "list", "-w", "dev", "-g", "other", check=False)
    assert r.returncode == 2 and "resource group 'rg-ml', not 'other'" in r.stderr
    r = home.run("workspace", "create", "-n", "../x", check=False)
    assert r.returncode == 2 and "invalid workspace name" in r.stderr
    assert not (home.home.parent / "x").exists()


def test_a_workspace_cannot_see_another_workspaces_jobs_models_or_endpoints(home: Project) -> None:
    home.write("job.yml", JOB)
    home.write("words.txt", "hello\n")
    home.write("data.yml", DATA)
    home.write("model/weights.txt", "w=1\n")
    home.write("ep.yml", BATCH.format(name="ws-batch-ep"))
    dev = ("-w", "dev", "-g", "rg-ml")
    job = home.json("job", "create", "-f", "job.yml", "--stream", *dev)
    assert home.json("job", "show", "-n", job["name"], *dev)["status"] == "Completed"
    home.run("data", "create", "-f", "data.yml", *dev)
    home.run("model", "create", "-n", "m", "-v", "1", "-p", "model", "-t", "custom_model", *dev)
    home.run("batch-endpoint", "create", "-f", "ep.yml", *dev)

    assert [m["name"] for m in home.json("model", "list", *dev)] == ["m"]
    for other in (("-w", "prod"), ()):  # a named workspace and the default one
        assert home.json("job", "list", *other) == []
        assert home.json("model", "list", *other) == []
        assert home.json("data", "list", *other) == []
        assert home.json("batch-endpoint", "list", *other) == []
        r = home.run("job", "show", "-n", job["name"], *other, check=False)
        assert r.returncode != 0 and job["name"] in r.stderr
        r = home.run("model", "show", "-n", "m", "-v", "1", *other, check=False)
        assert r.returncode != 0 and "'m' is not registered" in r.stderr
    # each workspace has its own MLflow store and job folders
    dev_home = home.home / "workspaces" / "dev"
    assert (dev_home / "mlflow.db").is_file() and (dev_home / "jobs" / job["name"]).is_dir()
    assert not (home.home / "jobs" / job["name"]).exists()


def test_a_home_made_before_named_workspaces_keeps_working(tmp_path) -> None:
    """The old layout (everything directly in the home) is the default workspace: its jobs,
    assets and models stay visible, with and without `-w local`, after named ones are added."""
    old = Project(tmp_path)
    old.write(
        "env.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\nname: testenv\nimage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04\n",
    )
    old.write("job.yml", JOB)
    old.write("model/weights.txt", "w=1\n")
    old.run("environment", "create", "-f", "env.yml")
    job = old.json("job", "create", "-f", "job.yml", "--stream")
    old.run("model", "create", "-n", "legacy", "-v", "3", "-p", "model", "-t", "custom_model")
    before = sorted(p.name for p in old.home.iterdir())
    assert "workspaces" not in before and "store.db" in before

    old.run("workspace", "create", "-n", "dev")
    for flags in ((), ("-w", "local")):
        assert old.json("job", "show", "-n", job["name"], *flags)["status"] == "Completed"
        assert old.json("model", "show", "-n", "legacy", "-v", "3", *flags)["version"] == "3"
        assert (
            old.json("environment", "show", "-n", "testenv", "-v", "1", *flags)["name"] == "testenv"
        )
    # nothing of the old workspace moved: its files are where they were
    after = sorted(p.name for p in old.home.iterdir())
    assert set(before) <= set(after) and set(after) - set(before) <= {"workspaces"}
    assert json.loads(old.run("job", "list", "-w", "dev").stdout) == []
