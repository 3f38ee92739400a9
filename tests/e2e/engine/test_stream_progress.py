"""`--stream` shows the progress of long work (issue 16 item 8): a sweep's trials done/running/
total with the best metric so far, a parallel step's mini-batches done/total with rows/s.
Through a pipe (CI) as plain lines; on a terminal drawn by rich in place."""

from __future__ import annotations

import io
import re
from pathlib import Path

from cli_support import Project

from amlocal.jobs import progress
from amlocal.jobs.stream import LiveView
from amlocal.workspace import Workspace

TRIAL_PY = """\
import argparse
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--quality")
a = p.parse_args()
mlflow.log_metric("acc", {"good": 0.91, "ok": 0.85, "bad": 0.1}[a.quality])
"""

SWEEP_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: progress-test
sampling_algorithm: grid
search_space:
  quality: {type: choice, values: [bad, good, ok]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 10, max_concurrent_trials: 2}
trial:
  code: ./src
  command: python trial.py --quality ${{search_space.quality}}
  environment: azureml:testenv@latest
"""

JOB_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: echo hi
environment: azureml:testenv@latest
"""

SCORE_PY = """\
import time

def init():
    pass

def run(mini_batch):
    time.sleep(0.05)
    return [f"{f},1" for f in mini_batch]
"""

PARALLEL_PIPELINE_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: progress-test
settings:
  default_compute: azureml:cpu-cluster
inputs:
  data: {type: uri_folder, path: ./data}
jobs:
  score:
    type: parallel
    inputs:
      data: ${{parent.inputs.data}}
    outputs:
      scored: {type: uri_folder}
    input_data: ${{inputs.data}}
    mini_batch_size: "1"
    max_concurrency_per_instance: 2
    task:
      type: run_function
      code: ./score
      entry_script: score.py
      append_row_to: ${{outputs.scored}}
      environment: azureml:testenv@latest
"""


def test_streamed_sweep_prints_trials_and_best_so_far(project: Project) -> None:
    project.write("src/trial.py", TRIAL_PY)
    project.write("sweep.yml", SWEEP_YML)
    job, r = project.create("sweep.yml")  # stderr is a pipe: plain lines
    assert r.returncode == 0, r.stderr
    name = job["name"]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"[{name}] trials")]
    assert lines, r.stderr
    assert "\x1b" not in r.stderr  # no terminal drawing in a pipe
    # The grid has 3 combinations: the total; the last line has them all, and the best.
    best = next(t["name"] for t in job["trials"] if t["parameters"] == {"quality": "good"})
    assert lines[-1] == f"[{name}] trials 3/3 done, 0 running, best acc=0.91 ({best})"
    shape = re.compile(rf"\[{name}\] trials [0-3]/3 done, [0-2] running(, best acc=\S+ \(\S+\))?")
    assert all(shape.fullmatch(ln) for ln in lines), lines
    assert len(lines) == len(set(lines))  # one line per change
    # `job stream`: the log alone on stdout, the progress on stderr.
    r = project.run("job", "stream", "-n", name)
    assert "trials " not in r.stdout and f"sweep {name}: Completed" in r.stdout
    assert f"[{name}] trials 3/3 done, 0 running, best acc=0.91 ({best})" in r.stderr


def test_streamed_parallel_step_prints_mini_batches_and_rows_per_second(
    project: Project,
) -> None:
    project.write("score/score.py", SCORE_PY)
    for i in range(12):
        project.write(f"data/f{i:02}.txt", "x\n")
    project.write("pipe.yml", PARALLEL_PIPELINE_YML)
    job, r = project.create("pipe.yml")
    assert r.returncode == 0, r.stderr
    name = job["name"]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"[{name}] score: mini-batches")]
    assert lines, r.stderr
    assert re.fullmatch(rf"\[{name}\] score: mini-batches 12/12, [\d,]+ rows/s", lines[-1])
    assert all(re.fullmatch(r".* mini-batches \d+/12, [\d,]+ rows/s", ln) for ln in lines)
    # The step lines tests and CI read are still there, once each.
    assert r.stderr.count(f"[{name}] score: Completed") == 1


def test_plain_lines_are_throttled_for_many_mini_batches() -> None:
    """10,000 mini-batches finishing one by one print about one line per tenth, not 10,000."""
    out = io.StringIO()
    plain = progress.PlainLines("job", out)
    for done in range(10_001):
        record = {"_progress": {"total": 10_000, "done": done, "rows_per_second": 100.0}}
        snap = progress.parallel(record, "score")
        assert snap is not None
        plain.show([snap])
    lines = out.getvalue().splitlines()
    assert 11 <= len(lines) <= 12, lines  # 0%, each tenth, (a quiet-interval line at most)
    assert lines[-1] == "[job] score: mini-batches 10000/10000, 100 rows/s"


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, as stderr does in a console."""

    def isatty(self) -> bool:
        return True


def test_terminal_view_draws_the_progress_with_rich(tmp_path: Path) -> None:
    """On a terminal the pipeline table and a sweep step's trials are drawn by rich
    (a bar, cursor movement to redraw in place), from the real store's records."""
    ws = Workspace(tmp_path / ".amlocal")
    ws.store.put("job", "p", {"name": "p", "type": "pipeline", "status": "Running"})
    step = {
        "name": "p_tune",
        "step_name": "tune",
        "type": "sweep",
        "status": "Running",
        "objective": {"primary_metric": "acc", "goal": "minimize"},
        "_trials_total": 8,
        "properties": {},
    }
    ws.store.put("job", "p_tune", step, parent="p")
    trials = [("Completed", 0.3), ("Completed", 0.2), ("Running", None), ("Failed", None)]
    for i, (status, acc) in enumerate(trials):
        metrics = {"acc": acc} if acc is not None else {}
        trial = {"name": f"p_tune_{i}", "status": status, "metrics": metrics}
        ws.store.put("job", f"p_tune_{i}", trial, parent="p_tune")
    out = _Terminal()
    view = LiveView(ws, "p", out)
    view.tick()
    ws.store.update("job", "p_tune_2", lambda r: r.update(status="Completed", metrics={"acc": 0.1}))
    view.tick()
    view.close()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn and redrawn in place
    assert "━" in text  # rich's progress bar
    assert "tune: trials" in text and "3/8" in text and "4/8" in text
    assert "best acc=0.2 (p_tune_1)" in text and "best acc=0.1 (p_tune_2)" in text
    assert "tune" in text and "running" in text  # the step table above the bars


def test_stream_into_a_pipe_does_not_import_rich(project: Project) -> None:
    """rich costs tens of milliseconds of start-up: only a terminal pays it."""
    project.write("job.yml", JOB_YML)
    r, imported = project.imports("job", "create", "-f", "job.yml", "--stream", "-o", "none")
    assert r.returncode == 0, r.stderr
    assert "amlocal.jobs.progress" in imported  # the view ran
    assert not {m for m in imported if m == "rich" or m.startswith("rich.")}


def test_a_job_whose_validation_is_cached_starts_on_the_standard_library(project: Project) -> None:
    """The fixed cost of every `job create` (issue 33): once azure-ai-ml has validated a YAML
    (cached), submitting it again imports neither azure-ai-ml nor MLflow, nor the HTTP stack
    (urllib.request, http.client, ssl), which only the MLflow UI's health check needs."""
    project.write("job.yml", JOB_YML)
    project.run("job", "create", "-f", "job.yml", "--stream", "-o", "none")  # validates, caches
    r, imported = project.imports("job", "create", "-f", "job.yml", "--stream", "-o", "none")
    assert r.returncode == 0, r.stderr
    assert "MLflow Run:" in r.stderr and "amlocal.ui" in imported  # the link was printed
    heavy = {"azure", "mlflow", "urllib.request", "http.client", "ssl"}
    assert not {m for m in imported if m in heavy or m.split(".")[0] in {"azure", "mlflow"}}
