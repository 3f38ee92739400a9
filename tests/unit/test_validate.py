"""`python -m amlocal.validate`: the repository passes, and each kind of broken file fails
with exit code 2 and a message naming the file and the key to edit.

The broken cases are written into a small repository in tmp_path (one good tree, then one
edit per case), so each test proves that one check can fail: a validator that accepts
everything would pass the first test and none of the others.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from amlocal import validate

ROOT = Path(__file__).resolve().parents[2]

GOOD: dict[str, str] = {
    "pyproject.toml": (
        '[project]\nname = "x"\nversion = "0"\ndependencies = ["numpy==2.4.6", "pandas==2.3.3"]\n'
    ),
    "src/a.py": "print('a')\n",
    "src/score.py": "def init():\n    pass\n\n\ndef run(raw):\n    return []\n",
    "data/d.csv": "x\n1\n",
    "data/d.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
name: d
version: "1"
type: uri_file
path: ./d.csv
""",
    "environments/env.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: env
version: "1"
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
conda_file: env.conda.yml
""",
    "environments/env.conda.yml": """\
name: env
dependencies:
  - python=3.11
  - pip:
      - numpy==2.4.6
      - pandas==2.3.3
""",
    "compute/cpu.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
name: cpu
type: amlcompute
size: Standard_DS2_v2
min_instances: 0
max_instances: 1
""",
    "components/a.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
type: command
name: a
version: "1"
code: ../src
environment: azureml:env:1
inputs:
  data:
    type: uri_file
  n:
    type: integer
    default: 1
outputs:
  out:
    type: uri_folder
command: python a.py --data ${{inputs.data}} --n ${{inputs.n}} --out ${{outputs.out}}
""",
    "components/b.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
type: command
name: b
version: "1"
code: ../src
environment: azureml:env@latest
inputs:
  x:
    type: uri_folder
  alpha:
    type: number
outputs:
  model:
    type: mlflow_model
command: python a.py --x ${{inputs.x}} --alpha ${{inputs.alpha}} --model ${{outputs.model}}
""",
    "pipelines/p.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings:
  default_compute: azureml:cpu
inputs:
  data:
    type: uri_file
    path: azureml:d:1
  alpha: 0.5
  n: 3
outputs:
  model:
    type: mlflow_model
jobs:
  a:
    type: command
    component: ../components/a.yml
    inputs:
      data: ${{parent.inputs.data}}
      n: ${{parent.inputs.n}}
  b:
    type: command
    component: ../components/b.yml
    inputs:
      x: ${{parent.jobs.a.outputs.out}}
      alpha: ${{parent.inputs.alpha}}
    outputs:
      model: ${{parent.outputs.model}}
""",
    "endpoints/online/e/endpoint.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: ept
auth_mode: key
traffic:
  blue: 100
  green: 0
""",
    "endpoints/online/e/blue.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: ept
model: azureml:m:1
code_configuration:
  code: ../../../src
  scoring_script: score.py
environment: azureml:env:1
instance_type: Standard_DS3_v2
instance_count: 1
request_settings:
  request_timeout_ms: 2000
""",
    "endpoints/online/e/green.yml": """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: green
endpoint_name: ept
model: azureml:m:1
code_configuration:
  code: ../../../src
  scoring_script: score.py
environment: azureml:env:1
instance_type: Standard_DS3_v2
instance_count: 1
""",
    "endpoints/online/e/sample-request.yml": "data: [[1, 2]]\n",
}


def make_repo(root: Path, edits: dict[str, tuple[str, str] | str | None] | None = None) -> Path:
    """The good tree, with `edits`: path -> (old, new) replacement, new content, or None
    to delete the file."""
    files = dict(GOOD)
    for rel, edit in (edits or {}).items():
        if edit is None:
            files.pop(rel)
        elif isinstance(edit, tuple):
            assert edit[0] in files[rel], f"fixture edit does not apply to {rel}: {edit[0]!r}"
            files[rel] = files[rel].replace(*edit)
        else:
            files[rel] = edit
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def run_validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = validate.main(["--root", str(root)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.subprocess
def test_the_repository_validates_from_the_command_line() -> None:
    """`make validate` in this repository: exit 0 and the summary line."""
    proc = subprocess.run(
        [sys.executable, "-m", "amlocal.validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("validate: ") and " 0 error(s)" in summary
    assert "Azure ML" in summary


def test_good_fixture_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_validate(make_repo(tmp_path), capsys)
    assert code == 0, out
    # The conda file and the sample request are skipped, not errors.
    assert "11 YAML files, 9 Azure ML (2 skipped" in out
    assert "0 error(s), 0 warning(s)" in out


BROKEN = {
    "schema error names the nested key": (
        {"endpoints/online/e/blue.yml": ("request_timeout_ms", "request_timeout_msx")},
        "endpoints/online/e/blue.yml: request_settings.request_timeout_msx: Unknown field",
    ),
    "wrong value type": (
        {"endpoints/online/e/blue.yml": ("instance_count: 1", "instance_count: many")},
        "endpoints/online/e/blue.yml: instance_count: Not a valid integer",
    ),
    "component input type": (
        {"components/b.yml": ("type: number", "type: numberx")},
        "components/b.yml: inputs.alpha:",
    ),
    "binding names a step that does not exist": (
        {"pipelines/p.yml": ("parent.jobs.a.outputs.out", "parent.jobs.ax.outputs.out")},
        "pipelines/p.yml: jobs.b.inputs.x: binds step 'ax', which is not in jobs",
    ),
    "binding names an output the step lacks": (
        {"pipelines/p.yml": ("parent.jobs.a.outputs.out", "parent.jobs.a.outputs.outx")},
        "pipelines/p.yml: jobs.b.inputs.x: step 'a' has no output 'outx' (has: out)",
    ),
    "binding names an undeclared pipeline input": (
        {"pipelines/p.yml": ("${{parent.inputs.alpha}}", "${{parent.inputs.alfa}}")},
        "pipelines/p.yml: jobs.b.inputs.alpha: binds parent input 'alfa', which is not declared",
    ),
    "literal input of the wrong type": (
        {"pipelines/p.yml": ("alpha: 0.5", "alpha: fast")},
        "pipelines/p.yml: jobs.b.inputs.alpha: type mismatch: parent input 'alpha' is string",
    ),
    "step output feeds an input of another type": (
        {"components/b.yml": ("    type: uri_folder", "    type: mlflow_model")},
        "pipelines/p.yml: jobs.b.inputs.x: type mismatch: a.outputs.out is uri_folder",
    ),
    "required input not bound": (
        {"pipelines/p.yml": ("      alpha: ${{parent.inputs.alpha}}\n", "")},
        "pipelines/p.yml: jobs.b.inputs: required input 'alpha' not bound",
    ),
    "component path does not exist": (
        {"pipelines/p.yml": ("../components/a.yml", "../components/ax.yml")},
        "pipelines/p.yml: jobs.a.component: ../components/ax.yml does not exist",
    ),
    "endpoint_name does not match the endpoint": (
        {"endpoints/online/e/green.yml": ("endpoint_name: ept", "endpoint_name: f")},
        "endpoints/online/e/green.yml: endpoint_name: 'f' does not match the endpoint",
    ),
    "traffic sums to 90": (
        {"endpoints/online/e/endpoint.yml": ("blue: 100", "blue: 90")},
        "endpoints/online/e/endpoint.yml: traffic: sums to 90; Azure ML requires 0 or 100",
    ),
    "traffic to a deployment that does not exist": (
        {"endpoints/online/e/endpoint.yml": ("green: 0", "red: 0")},
        "endpoints/online/e/endpoint.yml: traffic.red: no deployment 'red' of 'ept' here",
    ),
    "environment pins drift from pyproject": (
        {"environments/env.conda.yml": ("numpy==2.4.6", "numpy==2.0.0")},
        "environments/env.yml: conda_file: env.conda.yml: numpy==2.0.0 but pyproject.toml has ==2.4.6",
    ),
    "unpinned package in a conda file": (
        {"environments/env.conda.yml": ("pandas==2.3.3", "pandas>=2")},
        "environments/env.yml: conda_file: env.conda.yml: 'pandas>=2' is not an exact",
    ),
    "pinned environment version not defined": (
        {"components/a.yml": ("azureml:env:1", "azureml:env:7")},
        "components/a.yml: environment: environment 'env' version 7 is not defined here (1)",
    ),
    "unsupported schema": (
        {"data/d.yml": ("data.schema.json", "dataz.schema.json")},
        "data/d.yml: $schema: unsupported Azure ML schema 'dataz'",
    ),
    "invalid YAML": (
        {"data/bad.yml": "a: [1, 2\n"},
        "data/bad.yml: line ",
    ),
}


@pytest.mark.parametrize(("edits", "expected"), BROKEN.values(), ids=list(BROKEN))
def test_broken_fixture_is_rejected_with_file_and_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edits: dict[str, tuple[str, str] | str],
    expected: str,
) -> None:
    code, out = run_validate(make_repo(tmp_path, edits), capsys)
    assert code == 2, out
    assert expected in out, out
    assert any(ln.startswith("validate: ") and "0 error(s)" not in ln for ln in out.splitlines())


def test_unknown_compute_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, {"pipelines/p.yml": ("azureml:cpu", "azureml:gpu")})
    code, out = run_validate(root, capsys)
    assert code == 0, out
    assert "pipelines/p.yml: settings.default_compute: warning: no compute YAML here" in out
    assert "1 warning(s)" in out


def test_explicit_paths_limit_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path, {"endpoints/online/e/endpoint.yml": ("blue: 100", "blue: 90")})
    assert validate.main(["--root", str(root), str(root / "pipelines")]) == 0
    assert validate.main(["--root", str(root), str(root / "nope")]) == 2
    capsys.readouterr()


def test_rest_bodies_are_what_az_ml_sends() -> None:
    """The conversion is real: ARM-shaped bodies with the values from the YAML."""
    from amlocal import loader

    def rest(kind: str, rel: str) -> dict:
        return validate.to_rest(kind, loader.load(kind, ROOT / rel))

    dep = rest("online-deployment", "endpoints/online/diabetes/blue.yml")
    assert dep["location"] == validate.LOCATION
    assert dep["properties"]["codeConfiguration"]["scoringScript"] == "score.py"
    assert dep["properties"]["instanceType"] == "Standard_DS3_v2"
    job = rest("job", "pipelines/train.yml")
    assert job["properties"]["jobType"] == "Pipeline"
    prep = job["properties"]["jobs"]["prep"]
    # az ml registers each step's component (anonymously) and sends its id.
    assert prep["componentId"].startswith("azureml:")
    assert prep["inputs"]["data"]["value"] == "${{parent.inputs.data}}"
    compute = rest("compute", "compute/cpu-cluster.yml")
    assert compute["properties"]["properties"]["scaleSettings"]["minNodeCount"] == 0
    json.dumps([dep, job, compute])  # plain JSON all the way down


def test_error_json_is_flattened_to_keys() -> None:
    nested = {"a": {"b": ["Unknown field."]}, "c": ["x", "y"]}
    assert list(validate._flatten(nested)) == [("a.b", "Unknown field."), ("c", "x; y")]
    result = {"result": "Failed", "errors": [{"path": "inputs.alpha", "message": "bad"}]}
    assert list(validate._flatten(result)) == [("inputs.alpha", "bad")]


def test_registry_yaml_is_loaded_with_the_registry_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """registries/ is validated by default; a registry YAML whose replication_locations is
    not a list of regions is an error naming the file and the key."""
    assert validate.main(["--root", str(ROOT), str(ROOT / "registries"), "-v"]) == 0
    assert "ok   registries/registry.yml (registry)" in capsys.readouterr().out
    bad = tmp_path / "registries" / "registry.yml"
    bad.parent.mkdir()
    text = (ROOT / "registries" / "registry.yml").read_text()
    bad.write_text(text.replace("\n  - location: westeurope", " westeurope"))
    assert validate.main(["--root", str(tmp_path), str(bad.parent)]) == 2
    err = capsys.readouterr().err
    assert "registry.yml" in err and "replication_locations" in err, err
