"""Warm starts (amlocal.jobs.warm): forked steps must behave as cold `python script.py` runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import Project

from amlocal.jobs.warm import warm_argv


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("python train.py --alpha 0.5", ["train.py", "--alpha", "0.5"]),
        ("python3 'my dir/s.py' 'a b'", ["my dir/s.py", "a b"]),
        ("python -m pkg.mod", None),
        ("python s.py > out.txt", None),
        ("python s.py $HOME", None),
        ("python s.py && echo done", None),
        ("OMP_NUM_THREADS=1 python s.py", None),
        ("bash run.sh", None),
        ("python s.py 'unclosed", None),
    ],
)
def test_only_plain_python_script_commands_start_warm(command: str, argv: list | None) -> None:
    assert warm_argv(command) == argv


PROBE = """\
import json, os, sys
from pathlib import Path
import numpy as np
out = Path(sys.argv[2])
report = {
    "argv": sys.argv[1:2],
    "name": __name__,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "job": os.environ.get("AZUREML_RUN_ID"),
    "run": os.environ.get("MLFLOW_RUN_ID"),
    "custom": os.environ.get("CUSTOM"),
    "preloaded": "sklearn" in sys.modules,
    "random": float(np.random.rand()),
}
(out / "report.json").write_text(json.dumps(report))
print("probe done")
if sys.argv[1] == "boom":
    raise RuntimeError("boom from the step")
"""


def test_forked_steps_see_their_own_argv_env_cwd_and_fail_like_cold_ones(
    project: Project,
) -> None:
    project.write("src/slow.py", "import time\ntime.sleep(1.5)\n")  # arms the server
    project.write("src/probe.py", PROBE)

    def step(name: str, arg: str, extra: str = "") -> str:
        return (
            f"  {name}:\n    type: command\n    code: ./src\n"
            f"    command: python probe.py {arg} ${{{{outputs.o}}}}\n"
            "    environment: azureml:testenv@latest\n"
            "    inputs:\n      after: ${{parent.jobs.slow.outputs.o}}\n"
            "    outputs:\n      o:\n        type: uri_folder\n" + extra
        )

    project.write(
        "p.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
        "type: pipeline\nexperiment_name: warm\n"
        "settings:\n  default_compute: azureml:cpu-cluster\n  continue_on_step_failure: true\n"
        "jobs:\n"
        "  slow:\n    type: command\n    code: ./src\n"
        "    command: python slow.py ${{outputs.o}}\n"
        "    environment: azureml:testenv@latest\n"
        "    outputs:\n      o:\n        type: uri_folder\n"
        + step("a", "first")
        + step("b", "second")
        + step("cold", "third", "    environment_variables:\n      CUSTOM: set\n")
        + step("fails", "boom"),
    )
    job, r = project.create("p.yml", check=False)
    assert job["status"] == "Failed", r.stderr
    steps = project.steps(job["name"])
    assert {n: s["status"] for n, s in steps.items()} == {
        "slow": "Completed",
        "a": "Completed",
        "b": "Completed",
        "cold": "Completed",
        "fails": "Failed",
    }
    reports = {
        n: json.loads((Path(steps[n]["outputs"]["o"]["local_path"]) / "report.json").read_text())
        for n in ("a", "b", "cold", "fails")
    }
    for n, rep in reports.items():
        wd = project.home / "jobs" / steps[n]["name"] / "wd"
        assert rep["name"] == "__main__" and rep["cwd"] == str(wd), n
        assert rep["path0"] == str(wd), n
        assert rep["job"] == steps[n]["name"], n
        assert rep["run"] == steps[n]["properties"]["mlflow.runId"], n
    assert [reports[n]["argv"] for n in ("a", "b")] == [["first"], ["second"]]
    # a and b were forked from the warm server (scikit-learn already imported); the step
    # with its own environment_variables started cold, and saw them.
    assert reports["a"]["preloaded"] and reports["b"]["preloaded"]
    assert not reports["cold"]["preloaded"] and reports["cold"]["custom"] == "set"
    # Forks do not share NumPy's random state.
    assert len({reports[n]["random"] for n in ("a", "b", "fails")}) == 3
    # A raising script: exit 1, its own traceback (not the server's) in its log.
    fails = steps["fails"]
    assert fails["exit_code"] == 1
    log = (project.home / "jobs" / fails["name"] / "user_logs/std_log.txt").read_text()
    assert "probe done" in log and "RuntimeError: boom from the step" in log
    assert 'probe.py", line' in log and "warm.py" not in log and "runpy" not in log
    assert "boom from the step" in fails["error"]["log_tail"]
    # The server ran (its cwd is .amlocal/warm) and is gone once the pipeline has finished.
    assert list((project.home / "warm").glob("server-*.log")), "the warm server never started"
    assert _servers_in(project.home / "warm") == []


def _servers_in(folder: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError):
            continue
        if b"amlocal.jobs.warm import serve" in cmd and cwd == str(folder):
            pids.append(int(proc.name))
    return pids


def test_a_warm_step_is_timed_out_and_killed_like_a_cold_one(project: Project) -> None:
    project.write("src/slow.py", "import time\ntime.sleep(1.5)\n")
    project.write("src/hang.py", "import time\nprint('hanging', flush=True)\ntime.sleep(60)\n")
    project.write(
        "p.yml",
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: warm
        settings:
          default_compute: azureml:cpu-cluster
        jobs:
          slow:
            type: command
            code: ./src
            command: python slow.py ${{outputs.o}}
            environment: azureml:testenv@latest
            outputs:
              o:
                type: uri_folder
          hang:
            type: command
            code: ./src
            command: python hang.py ${{inputs.after}}
            environment: azureml:testenv@latest
            inputs:
              after: ${{parent.jobs.slow.outputs.o}}
            limits:
              timeout: 4
        """,
    )
    job, r = project.create("p.yml", check=False)
    hang = project.steps(job["name"])["hang"]
    assert hang["status"] == "Canceled", r.stderr
    assert "limits.timeout" in hang["error"]["message"]
    log = (project.home / "jobs" / hang["name"] / "user_logs/std_log.txt").read_text()
    assert "hanging" in log
