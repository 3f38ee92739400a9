"""Models a job logged with MLflow 3 (stored under models/m-<id>/, not the run's artifacts),
reached by Azure's job URIs through the real CLI: `azureml://jobs/<job>/outputs/artifacts/
paths/model` and `runs:/<job>/model`, the job name standing for its run. Fixtures:
tests/fixtures/mlflow3-models/ (register.sh is written for `az ml`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_support import ENV_YML, Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mlflow3-models"


def test_a_logged_model_registers_and_feeds_jobs_by_job_uris(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    project = Project(tmp_path)
    project.write("env.yml", ENV_YML)
    project.run("environment", "create", "-f", "env.yml")
    r = project.az_script("register.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    job = (tmp_path / "job.txt").read_text().strip()
    # the registered path keeps the URI's last part (`model`), as Azure shows it
    assert (tmp_path / "downloaded" / "fid-m3" / "model" / "MLmodel").is_file()
    by_run = project.json("model", "show", "-n", "fid-m3", "-v", "2")
    assert by_run["path"].rstrip("/").endswith("/model")
    assert "python_function" in (Path(by_run["path"]) / "MLmodel").read_text()

    project.write(
        "consume.yml",
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: ls ${{{{inputs.m}}}}
        environment: azureml:testenv@latest
        inputs:
          m:
            type: mlflow_model
            path: azureml://jobs/{job}/outputs/artifacts/paths/model
        """,
    )
    out, r = project.create("consume.yml")
    assert out["status"] == "Completed" and "MLmodel" in r.stdout + r.stderr

    r = project.run("model", "create", "-n", "fid-m3", "--type", "mlflow_model",
                    "--path", f"runs:/{job}/nothing-logged", check=False)  # fmt: skip
    assert r.returncode != 0 and "nothing-logged" in r.stderr
