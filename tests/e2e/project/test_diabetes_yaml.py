"""Every diabetes YAML loads with azure-ai-ml, and the pieces fit together.

azure-ai-ml's offline `_validate()` checks schemas but not bindings (a typo such as
`${{parent.jobs.prepx.outputs.x}}` passes it), so bindings, types and the command lines the
scripts must accept are checked here too.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.ai.ml import load_component, load_data, load_environment, load_job
from azure.ai.ml.entities import PipelineJob

ROOT = Path(__file__).resolve().parents[3]
COMPONENTS = {
    "prep_data": "prep",
    "train_model": "train",
    "evaluate_model": "evaluate",
    "register_model": "register",
}
PIPELINE = ROOT / "pipelines" / "train.yml"
ENVIRONMENTS = [ROOT / "environments" / "train.yml", ROOT / "environments" / "score.yml"]
MY_YAML = [
    *(ROOT / "components" / f"{c}.yml" for c in COMPONENTS),
    PIPELINE,
    ROOT / "data" / "diabetes.yml",
    *ENVIRONMENTS,
]
BINDING = re.compile(r"^\$\{\{parent\.(inputs|outputs|jobs)\.([\w-]+)(?:\.(\w+)\.([\w-]+))?\}\}$")
SAMPLE = {"number": "0.5", "integer": "3", "boolean": "True", "string": "diabetes-model"}


def raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def component_path(name: str) -> Path:
    return ROOT / "components" / f"{name}.yml"


@pytest.fixture(scope="module")
def pipeline() -> PipelineJob:
    return load_job(PIPELINE)


@pytest.mark.parametrize("path", MY_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_declares_its_schema(path: Path) -> None:
    schema = raw(path)["$schema"]
    assert schema.startswith("https://azuremlschemas.azureedge.net/latest/")


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_loads_and_validates(name: str) -> None:
    component = load_component(component_path(name))
    assert component._validate().passed
    assert component.name == f"diabetes_{name}" and component.version == "1"
    assert raw(component_path(name))["environment"] == "azureml:diabetes-train@latest"


@pytest.mark.parametrize(("name", "step"), COMPONENTS.items())
def test_component_has_its_own_code_folder_with_entry_point_and_lib(name: str, step: str) -> None:
    code = raw(component_path(name))["code"]
    assert code == f"../src/{step}"
    folder = (ROOT / "components" / code).resolve()
    assert {f"{step}.py", f"{step}_lib.py"} <= {p.name for p in folder.iterdir()}


def test_model_travels_as_mlflow_model() -> None:
    assert load_component(component_path("train_model")).outputs["model"].type == "mlflow_model"
    for name in ("evaluate_model", "register_model"):
        assert load_component(component_path(name)).inputs["model"].type == "mlflow_model"


def render(command: str, component: Any) -> list[str]:
    """Substitute inputs/outputs like the platform does, with sample values per type."""
    command = re.sub(r"\$\[\[(.*?)\]\]", r"\1", command)  # optional inputs: given

    def value(match: re.Match[str]) -> str:
        kind, name = match.groups()
        port = (component.inputs if kind == "inputs" else component.outputs)[name]
        return SAMPLE.get(port.type, f"/mnt/{kind}/{name}")

    rendered = re.sub(r"\$\{\{(inputs|outputs)\.(\w+)\}\}", value, command)
    assert "${{" not in rendered and "$[[" not in rendered
    return shlex.split(rendered)


@pytest.mark.parametrize(("name", "step"), COMPONENTS.items())
def test_command_line_is_accepted_by_the_script(name: str, step: str) -> None:
    component = load_component(component_path(name))
    command = raw(component_path(name))["command"]
    for port in [*component.inputs, *component.outputs]:
        assert f"{{{{inputs.{port}}}}}" in command or f"{{{{outputs.{port}}}}}" in command, port
    argv = render(command, component)
    assert argv[:2] == ["python", f"{step}.py"]
    # Load the entry point under a unique name: "train", "register"... are too generic to
    # leave in sys.modules for other tests.
    folder = ROOT / "src" / step
    spec = importlib.util.spec_from_file_location(f"diabetes_entry_{step}", folder / f"{step}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
        args = module.parse_args(argv[2:])
    finally:
        sys.path.remove(str(folder))
    assert set(vars(args)) == {*component.inputs, *component.outputs}


def test_pipeline_loads_and_validates(pipeline: PipelineJob) -> None:
    result = pipeline._validate()
    assert result.passed, result.error_messages
    assert result.error_messages == {}


def test_pipeline_contract(pipeline: PipelineJob) -> None:
    spec = raw(PIPELINE)
    assert spec["type"] == "pipeline" and spec["experiment_name"] == "diabetes-train"
    assert spec["settings"]["default_compute"] == "azureml:cpu-cluster"
    assert spec["inputs"]["data"] == {"type": "uri_file", "path": "azureml:diabetes:1"}
    assert spec["inputs"]["model_name"] == "diabetes-model"
    assert spec["inputs"]["enable_evaluation"] is True
    assert {"alpha", "test_size", "seed"} <= set(spec["inputs"])
    assert list(spec["jobs"]) == ["prep", "train", "evaluate", "register", "deploy"]
    assert set(pipeline.jobs) == set(spec["jobs"])
    # Hyperparameters reach the scripts from the pipeline inputs (so --set works).
    assert spec["jobs"]["train"]["inputs"]["alpha"] == "${{parent.inputs.alpha}}"
    assert spec["jobs"]["evaluate"]["inputs"]["enable_evaluation"] == (
        "${{parent.inputs.enable_evaluation}}"
    )


def test_pipeline_bindings_resolve_with_matching_types() -> None:
    spec = raw(PIPELINE)
    components = {
        job: load_component((PIPELINE.parent / body["component"]).resolve())
        for job, body in spec["jobs"].items()
    }
    checked = 0
    for job, body in spec["jobs"].items():
        component = components[job]
        bound = body.get("inputs", {})
        assert set(bound) <= set(component.inputs), f"{job}: unknown inputs"
        required = {n for n, p in component.inputs.items() if not p.optional and p.default is None}
        assert required <= set(bound), f"{job}: required inputs not bound"
        for name, binding in bound.items():
            match = BINDING.match(str(binding))
            assert match, f"{job}.{name}: {binding!r} is not a parent binding"
            scope, ref, kind, port = match.groups()
            if scope == "inputs":
                assert ref in spec["inputs"], f"{job}.{name}: no pipeline input {ref}"
            else:
                assert scope == "jobs" and kind == "outputs", binding
                assert list(spec["jobs"]).index(ref) < list(spec["jobs"]).index(job)
                source = components[ref].outputs[port]
                assert source.type == component.inputs[name].type, f"{job}.{name}: type"
            checked += 1
        for name, binding in (body.get("outputs") or {}).items():
            assert name in component.outputs
            scope, ref, _, _ = BINDING.match(binding).groups()
            assert scope == "outputs"
            assert spec["outputs"][ref]["type"] == component.outputs[name].type
            checked += 1
    assert checked == 22  # 20 input and 2 output bindings: none silently skipped


def test_binding_check_catches_a_typo() -> None:
    """The pattern and lookups above must reject what _validate() lets through."""
    spec = raw(PIPELINE)
    _, ref, _, _ = BINDING.match("${{parent.jobs.prepx.outputs.prepared_data}}").groups()
    assert ref not in spec["jobs"]
    assert BINDING.match("${{parent.job.prep.outputs.prepared_data}}") is None


def test_data_asset_points_at_the_committed_csv() -> None:
    data = load_data(ROOT / "data" / "diabetes.yml")
    assert (data.name, data.version, data.type) == ("diabetes", "1", "uri_file")
    assert Path(data.path).resolve() == (ROOT / "data" / "diabetes.csv").resolve()
    assert Path(data.path).is_file()


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: p.name)
def test_environment_loads_with_base_image_and_conda_file(path: Path) -> None:
    env = load_environment(path)
    assert env.name == f"diabetes-{path.stem}"
    assert env.image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    assert (path.parent / raw(path)["conda_file"]).is_file()
    assert "python=3.11" in env.conda_file["dependencies"]
