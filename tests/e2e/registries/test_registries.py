"""Registries: the `registry` verbs, `--registry-name` on asset verbs, `share`, the registry's
refusals, and registry references resolved in jobs and pipelines of any workspace."""

from __future__ import annotations

import json

from cli_support import Project

REGISTRY = """\
$schema: https://azuremlschemas.azureedge.net/latest/registry.schema.json
name: ml-shared
location: westeurope
description: shared by dev and prod
tags: {team: ml}
replication_locations:
  - location: westeurope
"""
ENV = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: reg-env
version: "1"
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
"""
COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: shout
version: "1"
type: command
code: ./src
environment: {env}
inputs:
  word: {{type: string}}
outputs:
  out: {{type: uri_folder}}
command: python shout.py ${{{{inputs.word}}}} ${{{{outputs.out}}}}
"""
REG_ENV = "azureml://registries/ml-shared/environments/reg-env/versions/1"
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: from-registry
settings:
  default_compute: azureml:cpu-cluster
jobs:
  pinned:
    type: command
    component: azureml://registries/ml-shared/components/shout/versions/1
    inputs: {word: pinned}
  latest:
    type: command
    component: azureml://registries/ml-shared/components/shout/labels/latest
    inputs: {word: latest}
"""


def _registry(home: Project) -> None:
    home.write("registry.yml", REGISTRY)
    home.write("reg-env.yml", ENV)
    home.write(
        "src/shout.py",
        "import pathlib, sys\npathlib.Path(sys.argv[2], 'w.txt').write_text(sys.argv[1].upper())\n",
    )
    home.write("comp.yml", COMPONENT.format(env=REG_ENV))
    home.run("registry", "create", "-f", "registry.yml", "-o", "none")


def test_registry_verbs_with_query_and_output(home: Project) -> None:
    home.write("registry.yml", REGISTRY)
    shown = home.json("registry", "create", "-f", "registry.yml")
    assert shown["name"] == "ml-shared" and shown["location"] == "westeurope"
    assert shown["id"].endswith("/registries/ml-shared")
    assert home.json("registry", "list", "--query", "[].name") == ["ml-shared"]
    r = home.run("registry", "show", "-n", "ml-shared", "--query", "tags.team", "-o", "tsv")
    assert r.stdout == "ml\n"
    upd = home.json(
        "registry", "update", "-n", "ml-shared", "--set", "description=v2", "tags.stage=all"
    )
    assert upd["description"] == "v2" and upd["tags"] == {"team": "ml", "stage": "all"}
    # the registry is the home's, not a workspace's: every workspace lists it
    assert home.json("registry", "list", "-w", "prod", "--query", "[].name") == ["ml-shared"]
    home.write("moved.yml", REGISTRY.replace("westeurope", "eastus"))
    r = home.run("registry", "update", "-f", "moved.yml", check=False)
    assert r.returncode == 2 and "primary region cannot change" in r.stderr
    home.write("bad.yml", REGISTRY.replace("name: ml-shared", "name: ../x"))
    r = home.run("registry", "create", "-f", "bad.yml", check=False)
    assert r.returncode == 2 and "bad.yml" in r.stderr
    assert home.run("registry", "delete", "-n", "ml-shared", "-y", "-o", "none").returncode == 0
    assert home.json("registry", "list") == []
    r = home.run("registry", "show", "-n", "ml-shared", check=False)
    assert r.returncode == 2 and "registry 'ml-shared' does not exist" in r.stderr


def test_registry_refusals_exit_2_with_clear_errors(home: Project) -> None:
    _registry(home)
    # unknown registry, on create, show, list and share
    for args in (
        ("environment", "create", "-f", "reg-env.yml", "--registry-name", "nope"),
        ("model", "show", "-n", "m", "-v", "1", "--registry-name", "nope"),
        ("component", "list", "--registry-name", "nope"),
        ("model", "share", "-n", "m", "-v", "1", "--registry-name", "nope", "-w", "dev"),
    ):
        r = home.run(*args, check=False)
        assert r.returncode == 2 and "registry 'nope' does not exist" in r.stderr, (args, r.stderr)
    # a component whose environment is not yet in the registry
    r = home.run(
        "component", "create", "-f", "comp.yml", "--registry-name", "ml-shared", check=False
    )
    assert r.returncode == 2 and "create it in the registry first" in r.stderr, r.stderr
    home.run("environment", "create", "-f", "reg-env.yml", "--registry-name", "ml-shared")
    # immutable: the same name and version again, even identical, is refused
    r = home.run(
        "environment", "create", "-f", "reg-env.yml", "--registry-name", "ml-shared", check=False
    )
    assert r.returncode == 2 and "reg-env:1 already exists in registry 'ml-shared'" in r.stderr
    # an anonymous (inline) environment, and a workspace's environment, are refused
    home.write(
        "inline.yml",
        COMPONENT.format(env="{image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04}"),
    )
    r = home.run(
        "component", "create", "-f", "inline.yml", "--registry-name", "ml-shared", check=False
    )
    assert r.returncode == 2 and "anonymous (inline) environment" in r.stderr, r.stderr
    home.write("wsenv.yml", COMPONENT.format(env="azureml:testenv:1"))
    r = home.run(
        "component", "create", "-f", "wsenv.yml", "--registry-name", "ml-shared", check=False
    )
    assert r.returncode == 2 and "is not in registry 'ml-shared'" in r.stderr
    assert home.json("component", "list", "--registry-name", "ml-shared") == []
    # sharing a version the registry already holds
    home.write("model/w.txt", "1\n")
    home.run(
        "model", "create", "-n", "m", "-v", "1", "-p", "model", "-t", "custom_model", "-w", "dev"
    )
    home.run("model", "share", "-n", "m", "-v", "1", "--registry-name", "ml-shared", "-w", "dev")
    r = home.run(
        "model",
        "share",
        "-n",
        "m",
        "-v",
        "1",
        "--registry-name",
        "ml-shared",
        "-w",
        "dev",
        check=False,
    )
    assert r.returncode == 2 and "m:1 already exists in registry 'ml-shared'" in r.stderr
    # a registry reference of an unknown registry in a job
    home.write(
        "job.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: echo\nenvironment: azureml://registries/nope/environments/e/versions/1\n",
    )
    r = home.run("job", "create", "-f", "job.yml", "-w", "prod", check=False)
    assert r.returncode == 2 and "registry 'nope' does not exist" in r.stderr, r.stderr


def test_component_and_environment_from_the_registry_run_in_prod(home: Project) -> None:
    _registry(home)
    env = home.json("environment", "create", "-f", "reg-env.yml", "--registry-name", "ml-shared")
    assert env["id"] == REG_ENV
    comp = home.json("component", "create", "-f", "comp.yml", "--registry-name", "ml-shared")
    assert comp["id"] == "azureml://registries/ml-shared/components/shout/versions/1"
    assert (
        home.json(
            "component",
            "show",
            "-n",
            "shout",
            "-v",
            "1",
            "--registry-name",
            "ml-shared",
            "--query",
            "environment",
        )
        == REG_ENV
    )
    # the component's code was uploaded with it: editing the local copy changes nothing
    home.write("src/shout.py", "raise SystemExit('edited after publishing')\n")
    home.write("p.yml", PIPELINE)
    for ws in ("prod", "dev"):  # any workspace of the home
        job = home.json("job", "create", "-f", "p.yml", "--stream", "-w", ws)
        assert job["status"] == "Completed", job
        out = home.home / "workspaces" / ws / "datastores" / "workspaceblobstore" / "azureml"
        words = sorted(p.read_text() for p in out.glob("*/out/w.txt"))
        assert words == ["LATEST", "PINNED"], words
    # neither workspace registered the component or its environment: they stay the registry's
    assert home.json("component", "list", "-w", "prod") == []


def test_shared_model_keeps_lineage_and_resolves_in_a_job(home: Project) -> None:
    _registry(home)
    home.run("environment", "create", "-f", "reg-env.yml", "--registry-name", "ml-shared")
    home.write(
        "train.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: >-
          python -c "import mlflow, pathlib, sys; mlflow.log_metric('rmse', 0.5);
          pathlib.Path(sys.argv[1], 'weights.txt').write_text('w=7')" ${{outputs.model}}
        environment: azureml:testenv:1
        experiment_name: train
        outputs:
          model: {type: custom_model}
        """,
    )
    job = home.json("job", "create", "-f", "train.yml", "--stream", "-w", "dev")
    path = f"azureml://jobs/{job['name']}/outputs/model"
    home.run(
        "model",
        "create",
        "-n",
        "champ",
        "-v",
        "1",
        "-t",
        "custom_model",
        "-p",
        path,
        "--tags",
        "test_rmse=0.5",
        "-w",
        "dev",
    )
    shared = home.json(
        "model", "share", "-n", "champ", "-v", "1", "--registry-name", "ml-shared",
        "--share-with-name", "champ-prod", "--share-with-version", "4", "-w", "dev",
    )  # fmt: skip
    assert shared["id"] == "azureml://registries/ml-shared/models/champ-prod/versions/4"
    props = shared["properties"]
    assert props["azureml.sharedFrom.workspace"] == "dev"
    assert props["azureml.sharedFrom.assetId"].endswith("/workspaces/dev/models/champ/versions/1")
    assert props["azureml.sharedFrom.jobName"] == job["name"]
    assert props["mlflow.run_id"] == job["properties"]["mlflow.runId"]
    assert props["azureml.sharedFrom.metrics.rmse"] == "0.5"
    assert (
        home.json("model", "show", "-n", "champ", "-v", "1", "-w", "dev")["job_name"] == job["name"]
    )
    assert shared["tags"]["test_rmse"] == "0.5"
    listed = home.json("model", "list", "--registry-name", "ml-shared", "--query", "[].name")
    assert listed == ["champ-prod"]
    # prod reads the registry's model as a job input, by version and by label
    for ref in ("versions/4", "labels/latest"):
        home.write(
            "use.yml",
            "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
            "command: cp ${{inputs.m}}/weights.txt ${{outputs.o}}/\n"
            f"environment: {REG_ENV}\n"
            f"inputs:\n  m: {{type: custom_model, path: azureml://registries/ml-shared/models/champ-prod/{ref}}}\n"
            "outputs:\n  o: {type: uri_folder}\n",
        )
        used = home.json("job", "create", "-f", "use.yml", "--stream", "-w", "prod")
        assert used["status"] == "Completed"
        out = (
            home.home
            / "workspaces"
            / "prod"
            / "datastores"
            / "workspaceblobstore"
            / "azureml"
            / used["name"]
            / "o"
        )
        assert (out / "weights.txt").read_text() == "w=7"
    assert json.loads(home.run("model", "list", "-w", "prod").stdout) == []


def test_environment_and_data_share_from_a_workspace(home: Project) -> None:
    """`environment share` and `data share` copy a workspace's version into the registry
    (renamed with --share-with-name/--share-with-version); prod then reads the data."""
    _registry(home)
    home.write("words.txt", "shared words\n")
    home.write(
        "data.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json\n"
        "name: words\nversion: '1'\ntype: uri_file\npath: ./words.txt\n",
    )
    dev = ("-w", "dev", "-g", "rg-ml")
    home.run("data", "create", "-f", "data.yml", *dev)
    env = home.json(
        "environment", "share", "-n", "testenv", "-v", "1", "--registry-name", "ml-shared",
        "--share-with-name", "base-env", "--share-with-version", "7", *dev,
    )  # fmt: skip
    assert env["id"] == "azureml://registries/ml-shared/environments/base-env/versions/7"
    assert env["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    data = home.json(
        "data", "share", "-n", "words", "-v", "1", "--registry-name", "ml-shared", *dev
    )
    assert data["id"] == "azureml://registries/ml-shared/data/words/versions/1"
    # the registry holds its own copy: changing dev's file later changes nothing
    home.write("words.txt", "changed\n")
    home.write(
        "read.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: cp ${{inputs.w}} ${{outputs.o}}/w.txt\n"
        "environment: azureml://registries/ml-shared/environments/base-env/versions/7\n"
        "inputs:\n  w: {type: uri_file, path: azureml://registries/ml-shared/data/words/versions/1}\n"
        "outputs:\n  o: {type: uri_folder}\n",
    )
    job = home.json("job", "create", "-f", "read.yml", "--stream", "-w", "prod")
    assert job["status"] == "Completed"
    out = home.home / "workspaces/prod/datastores/workspaceblobstore/azureml" / job["name"] / "o"
    assert (out / "w.txt").read_text() == "shared words\n"
    assert home.json("data", "list", "-w", "prod") == []
    r = home.run(
        "data", "share", "-n", "words", "-v", "9", "--registry-name", "ml-shared", *dev, check=False
    )
    assert r.returncode != 0 and "words" in r.stderr and "'9'" in r.stderr
