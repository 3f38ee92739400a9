"""A pipeline's own MLflow run carries the pipeline's inputs as params and its steps' final
metrics (`<step>.<metric>`, reused steps' too), so MLflow's runs table and charts compare
pipeline runs."""

from __future__ import annotations

from cli_support import Project

from tests.e2e.engine.test_pipeline import _project


def test_pipeline_run_has_inputs_as_params_and_step_metrics(project: Project) -> None:
    from mlflow.tracking import MlflowClient

    _project(project)
    client = MlflowClient(f"sqlite:///{project.home / 'mlflow.db'}")
    job, _ = project.create("pipe.yml")
    parent = client.get_run(
        project.json("job", "show", "-n", job["name"])["properties"]["mlflow.runId"]
    )
    assert parent.data.params["v"] == "a"
    assert parent.data.params["d"].endswith("in.txt")
    # first: "a+d1", second: "b+a+d1", third: "c" (STEP_PY logs the text's length)
    assert parent.data.metrics == {"first.length": 4.0, "second.length": 6.0, "third.length": 1.0}
    # A rerun with a new input: `first` and `second` run again, `third` is reused; all compare.
    job, _ = project.create("pipe.yml", "--set", "inputs.v=xyz")
    parent = client.get_run(
        project.json("job", "show", "-n", job["name"])["properties"]["mlflow.runId"]
    )
    assert parent.data.params["v"] == "xyz"
    assert parent.data.metrics == {"first.length": 6.0, "second.length": 8.0, "third.length": 1.0}
