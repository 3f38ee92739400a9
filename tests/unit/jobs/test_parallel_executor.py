"""The mini-batch executor (amlocal.jobs.kinds.parallel) with tiny entry scripts in real worker
subprocesses: splitting, ordering, retries, timeouts, thresholds, logs and clean-up.

Scripts here import only the standard library, so each worker starts in ~0.1 s. Nothing
asserts on timings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs.kinds import parallel as P

# Nearly every test here starts worker processes: the file is not in the in-process tier.
pytestmark = pytest.mark.subprocess

# Echoes each file's lines as rows: one row per line, `<file>,<line>`.
ECHO = """
import os, sys, time
def init():
    print("init in", os.getcwd())
def run(mini_batch):
    rows = []
    for path in mini_batch:
        name = os.path.basename(path)
        text = open(path).read()
        if "CORRUPT" in text:
            raise ValueError(f"{name}: corrupt content")
        if "HANG" in text:
            time.sleep(3600)
        if "CRASH" in text:
            os._exit(3)
        if "SHORT" in text:
            return []
        if "SLOW" in text:
            time.sleep(0.3)
        print("scoring", name)
        rows.extend((name, line) for line in text.split())
    return rows
"""


def write_script(tmp_path: Path, body: str = ECHO, name: str = "score.py") -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(body))
    return code


def make_folder(tmp_path: Path, contents: dict[str, str]) -> Path:
    folder = tmp_path / "input"
    folder.mkdir(exist_ok=True)
    for name, text in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def spec(code: Path, **kw) -> P.ParallelSpec:
    settings = {"mini_batch_size": 1, "max_concurrency_per_instance": 2, **kw}
    retry = settings.pop("retry_settings", {"max_retries": 1, "timeout": 30})
    return P.ParallelSpec.for_batch_deployment(
        {**settings, "retry_settings": retry}, code_dir=code, entry_script="score.py"
    )


def run(tmp_path: Path, s: P.ParallelSpec, folder: Path, **kw) -> tuple[P.Summary, list[str]]:
    lines: list[str] = []
    batches = P.plan(folder, s.mini_batch_size)
    summary = P.execute(s, batches, tmp_path / "out", tmp_path / "logs", log=lines.append, **kw)
    return summary, lines


def worker_pids(log_dir: Path) -> set[int]:
    pids = set()
    for f in (log_dir / "user" / "mini_batches").glob("*.txt"):
        pids |= {int(p) for p in re.findall(r"\(pid (\d+)\)", f.read_text())}
    return pids


def assert_reaped(pids: set[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- splitting ----------------------------------------------------------------------------
def test_parse_mini_batch_size() -> None:
    assert P.parse_mini_batch_size(10) == (10, None)
    assert P.parse_mini_batch_size("10") == (10, None)
    assert P.parse_mini_batch_size("100kb") == (None, 100 * 1024)
    assert P.parse_mini_batch_size("1.5 MB") == (None, int(1.5 * 1024**2))
    for bad in (0, "ten", "-3", True):
        with pytest.raises(InvalidInput):
            P.parse_mini_batch_size(bad)


def test_folder_splits_by_files_sorted_recursively_skipping_hidden(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        {"b.csv": "x", "a.csv": "x", "sub/c.csv": "x", ".hidden": "x", "d.csv": "x"},
    )
    batches = P.plan(folder, 2)
    assert [len(b.items) for b in batches] == [2, 2]
    assert [Path(i).name for b in batches for i in b.items] == ["a.csv", "b.csv", "d.csv", "c.csv"]
    assert batches[0].label == "a.csv, b.csv" and batches[1].label == "d.csv, sub/c.csv"


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {".only-hidden": "x"})
    with pytest.raises(InvalidInput, match="contains no files"):
        P.plan(folder, 10)


def test_csv_rows_split_by_count_and_size(tmp_path: Path) -> None:
    lines = [f"{i},{i * 2}" for i in range(25)]
    lines.insert(10, "")  # a blank line is not a row (pandas skips it)
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "\n".join(lines))  # no trailing newline
    by_count = P.plan(path, 10)
    assert [b.n_items for b in by_count] == [10, 10, 5]
    assert [b.items[0]["first_row"] for b in by_count] == [0, 10, 20]
    data = path.read_bytes()
    body = b"".join(data[b.items[0]["start"] : b.items[0]["end"]] for b in by_count)
    assert body.split() == data[4:].split()
    by_size = P.plan(path, "20b")
    assert sum(b.n_items for b in by_size) == 25 and len(by_size) > 3


# -- running ------------------------------------------------------------------------------
def test_append_row_order_is_by_file_then_row_whatever_finishes_first(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    # The first file is slow, so later mini-batches finish first on the other worker.
    files = {f"f{i:02d}.txt": f"{i}a {i}b" for i in range(8)}
    files["f00.txt"] = "SLOW 0a"
    folder = make_folder(tmp_path, files)
    summary, lines = run(tmp_path, spec(code), folder)
    assert summary.status == "Completed", summary
    out = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    expected = [f"{n},{w}" for n, text in sorted(files.items()) for w in text.split()]
    assert out == expected
    assert summary.rows == len(expected) and summary.items_succeeded == 8
    assert summary.workers == 2
    assert any(line.startswith("progress: mini-batches 8/8") for line in lines)
    # What run() printed is in that mini-batch's own log; init()'s print in the worker log.
    assert "scoring f03.txt" in (tmp_path / "logs/user/mini_batches/mb-00003.txt").read_text()
    worker_logs = (tmp_path / "logs/user/stdout").glob("worker-*.txt")
    assert all("init in" in f.read_text() for f in worker_logs)
    assert not list((tmp_path / "logs").glob(".parallel-parts-*"))
    assert_reaped(worker_pids(tmp_path / "logs"))


def test_summary_only_writes_no_output_file(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1 2", "b.txt": "3"})
    summary, _ = run(tmp_path, spec(code, output_action="summary_only"), folder)
    assert summary.status == "Completed" and summary.output_file is None
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_corrupt_file_fails_only_its_mini_batch_after_retries(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1", "bad.txt": "CORRUPT", "c.txt": "3"})
    summary, lines = run(tmp_path, spec(code, error_threshold=-1), folder)
    assert summary.status == "Completed"  # -1 tolerates every failure
    assert summary.mini_batches_failed == 1 and summary.items_failed == 1
    assert summary.failures[0]["items"] == "bad.txt" and summary.failures[0]["attempts"] == 2
    assert "ValueError: bad.txt: corrupt content" in summary.failures[0]["error"]
    assert (tmp_path / "out/predictions.csv").read_text().splitlines() == ["a.txt,1", "c.txt,3"]
    assert any("[bad.txt] attempt 2/2 failed: ValueError" in line for line in lines)
    assert "bad.txt" in (tmp_path / "logs/job_error.txt").read_text()
    mb_log = (tmp_path / "logs/user/mini_batches/mb-00001.txt").read_text()
    assert mb_log.count("Traceback") == 2 and "attempt 2" in mb_log


@pytest.mark.parametrize(("threshold", "status"), [(1, "Completed"), (0, "Failed")])
def test_error_threshold_counts_failed_items(tmp_path: Path, threshold: int, status: str) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1", "bad.txt": "CORRUPT", "c.txt": "3"})
    summary, _ = run(tmp_path, spec(code, error_threshold=threshold), folder)
    assert summary.status == status
    if status == "Failed":
        assert "error_threshold exceeded: 1 failed item(s) > error_threshold 0" in summary.error
        assert "bad.txt" in summary.error


def test_mini_batch_error_threshold(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1", "b.txt": "CORRUPT", "c.txt": "CORRUPT"})
    s = spec(code)
    s.mini_batch_error_threshold = 1
    summary, _ = run(tmp_path, s, folder)
    assert summary.status == "Failed" and "mini_batch_error_threshold exceeded" in summary.error


def test_short_return_fails_the_mini_batch(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1", "b.txt": "SHORT"})
    summary, _ = run(tmp_path, spec(code), folder)
    assert summary.status == "Completed" and summary.items_failed == 1
    assert "returned 0 row(s) for 1 item(s)" in summary.failures[0]["error"]


def test_hung_run_is_killed_retried_then_failed(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1", "hang.txt": "HANG", "c.txt": "3"})
    s = spec(code, retry_settings={"max_retries": 1, "timeout": 1})
    summary, lines = run(tmp_path, s, folder)
    assert summary.status == "Completed" and summary.items_failed == 1
    assert summary.failures[0]["items"] == "hang.txt" and summary.failures[0]["attempts"] == 2
    assert "retry_settings.timeout=1s" in summary.failures[0]["error"]
    assert summary.worker_restarts >= 1
    assert (tmp_path / "out/predictions.csv").read_text().splitlines() == ["a.txt,1", "c.txt,3"]
    assert_reaped(worker_pids(tmp_path / "logs"))


def test_list_rows_are_written_without_importing_pandas() -> None:
    """A script that returns lists never imported pandas; writing its rows must not import it
    either, or the import (seconds on a busy box) eats into run()'s timeout."""
    probe = (
        "import sys\n"
        "from amlocal.jobs.kinds.parallel.worker import serialize_rows\n"
        "assert serialize_rows([('a.txt', '1'), ('b.txt', '2')]) == b'a.txt,1\\nb.txt,2\\n'\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_queued_mini_batch_is_timed_from_its_own_start(tmp_path: Path) -> None:
    """A worker is handed its next mini-batch while it runs one. The queued one's timeout
    counts from when it starts, and when the worker is killed it is not failed but given to
    the replacement."""
    code = write_script(tmp_path, ECHO.replace("time.sleep(0.3)", "time.sleep(1.2)"))
    s = spec(code, max_concurrency_per_instance=1, retry_settings={"max_retries": 0, "timeout": 2})
    # 1.2 s each: the second and third would be past 2 s if timed from when they were sent.
    folder = make_folder(tmp_path, {"a.txt": "SLOW 1", "b.txt": "SLOW 2", "c.txt": "SLOW 3"})
    summary, _ = run(tmp_path, s, folder)
    assert summary.status == "Completed" and summary.items_failed == 0, summary.failures
    assert summary.worker_restarts == 0

    # One worker: a-hang.txt runs, b.txt waits behind it; the hang is killed, b.txt is not.
    (tmp_path / "h").mkdir()
    folder = make_folder(tmp_path / "h", {"a-hang.txt": "HANG", "b.txt": "2"})
    s = spec(code, max_concurrency_per_instance=1, retry_settings={"max_retries": 0, "timeout": 1})
    summary, _ = run(tmp_path / "h", s, folder)
    assert summary.status == "Completed" and summary.items_failed == 1
    assert [f["items"] for f in summary.failures] == ["a-hang.txt"]
    assert (tmp_path / "h/out/predictions.csv").read_text().splitlines() == ["b.txt,2"]
    assert_reaped(worker_pids(tmp_path / "h/logs"))


def test_crashed_worker_is_replaced_and_its_mini_batch_retried(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1", "crash.txt": "CRASH", "c.txt": "3"})
    summary, _ = run(tmp_path, spec(code), folder)
    assert summary.status == "Completed" and summary.items_failed == 1
    assert "worker process exited with code 3" in summary.failures[0]["error"]
    assert summary.mini_batches_succeeded == 2


def test_init_failure_fails_the_job(tmp_path: Path) -> None:
    code = write_script(
        tmp_path, "def init():\n    raise RuntimeError('no model')\ndef run(b):\n    return b\n"
    )
    folder = make_folder(tmp_path, {"a.txt": "1"})
    summary, _ = run(tmp_path, spec(code), folder)
    assert summary.status == "Failed"
    assert "init() failed on worker 0: RuntimeError: no model" in summary.error


def test_cancel_kills_workers(tmp_path: Path) -> None:
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "HANG", "b.txt": "HANG"})
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    t0 = time.monotonic()
    summary, _ = run(tmp_path, spec(code), folder, cancel=cancel)
    timer.cancel()
    assert summary.status == "Canceled"
    assert time.monotonic() - t0 < 25  # far below retry_settings.timeout (30 s): not a timing claim
    assert_reaped(worker_pids(tmp_path / "logs"))


def test_tabular_input_reaches_run_as_dataframes_indexed_by_row(tmp_path: Path) -> None:
    code = write_script(
        tmp_path,
        """
        def run(df):
            return [(df.attrs["source"], i, int(a) * 10) for i, a in zip(df.index, df["a"])]
        """,
    )
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},x\n" for i in range(23)))
    s = spec(code, mini_batch_size=5)
    batches = P.plan(path, 5)
    summary = P.execute(s, batches, tmp_path / "out", tmp_path / "logs", log=lambda _: None)
    assert summary.status == "Completed" and summary.items == 23 and summary.mini_batches == 5
    out = (tmp_path / "out/predictions.csv").read_text().splitlines()
    assert out == [f"t.csv,{i},{i * 10}" for i in range(23)]


def test_program_arguments_reach_the_script(tmp_path: Path) -> None:
    code = write_script(
        tmp_path,
        """
        import argparse
        def init():
            global tag
            p = argparse.ArgumentParser()
            p.add_argument("--tag")
            tag = p.parse_known_args()[0].tag
        def run(mini_batch):
            return [tag for _ in mini_batch]
        """,
    )
    folder = make_folder(tmp_path, {"a.txt": "1"})
    job = {
        "task": {
            "entry_script": "score.py",
            "program_arguments": "--tag hello --append_row_file_name out.csv",
            "append_row_to": "${{outputs.scored}}",
        }
    }
    s = P.ParallelSpec.for_parallel_job(job, code_dir=code)
    assert s.output_file_name == "out.csv" and s.output_action == "append_row"
    summary, _ = run(tmp_path, s, folder)
    assert summary.status == "Completed"
    assert (tmp_path / "out/out.csv").read_text() == "hello\n"


# -- defaults -----------------------------------------------------------------------------
def test_batch_deployment_and_parallel_job_defaults_differ_as_documented(tmp_path: Path) -> None:
    b = P.ParallelSpec.for_batch_deployment({}, code_dir=tmp_path, entry_script="s.py")
    assert (b.mini_batch_size, b.max_concurrency_per_instance, b.instance_count) == (10, 1, 1)
    assert (b.max_retries, b.timeout, b.error_threshold) == (3, 30, -1)
    assert (b.output_action, b.output_file_name, b.logging_level) == (
        "append_row",
        "predictions.csv",
        "info",
    )
    p = P.ParallelSpec.for_parallel_job({"task": {"entry_script": "s.py"}}, code_dir=tmp_path)
    assert (p.mini_batch_size, p.max_concurrency_per_instance, p.instance_count) == (1, 1, 1)
    assert (p.max_retries, p.timeout, p.error_threshold, p.mini_batch_error_threshold) == (
        2,
        60,
        -1,
        -1,
    )
    assert (p.output_action, p.output_file_name) == ("summary_only", "parallel_run_step.txt")
    full = P.ParallelSpec.for_parallel_job(
        {
            "task": {"entry_script": "s.py", "append_row_to": "${{outputs.o}}"},
            "mini_batch_size": "5",
            "resources": {"instance_count": 2},
            "max_concurrency_per_instance": 3,
            "retry_settings": {"max_retries": 0, "timeout": 5},
            "mini_batch_error_threshold": 2,
        },
        code_dir=tmp_path,
    )
    assert full.workers == 6 and full.max_retries == 0 and full.timeout == 5
    assert full.output_action == "append_row" and full.mini_batch_error_threshold == 2


@pytest.mark.parametrize("name", ["../../x.csv", "/tmp/x.csv", "..", "a/b.csv"])
def test_a_results_file_name_that_names_a_folder_is_refused(tmp_path: Path, name: str) -> None:
    """The results file is written inside the output folder: a name with folders in it (from
    a deployment's `output_file_name` or `--append_row_file_name`) would write outside it."""
    job = {
        "task": {
            "entry_script": "s.py",
            "program_arguments": f"--append_row_file_name {name}",
            "append_row_to": "${{outputs.scored}}",
        }
    }
    with pytest.raises(InvalidInput, match="--append_row_file_name"):
        P.ParallelSpec.for_parallel_job(job, code_dir=tmp_path)
    with pytest.raises(InvalidInput, match="output_file_name"):
        P.ParallelSpec.for_batch_deployment(
            {"output_file_name": name}, code_dir=tmp_path, entry_script="s.py"
        )


def test_a_worker_on_another_interpreter_finds_amlocal(tmp_path: Path) -> None:
    """An isolated environment's interpreter (a venv without amlocal, made from this very
    Python as `environments/build.py` makes them) still runs the worker module."""
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    alone = subprocess.run([str(python), "-c", "import amlocal"], capture_output=True, cwd=venv)
    assert alone.returncode != 0, "the venv must not see amlocal by itself"
    code = write_script(tmp_path)
    folder = make_folder(tmp_path, {"a.txt": "1 2", "b.txt": "3"})
    s = P.ParallelSpec.for_batch_deployment(
        {"mini_batch_size": 1}, code_dir=code, entry_script="score.py", python=str(python)
    )
    summary, _ = run(tmp_path, s, folder)
    logs = [f.read_text() for f in (tmp_path / "logs/user/stdout").glob("*.txt")]
    assert summary.status == "Completed", logs
    out = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert out == ["a.txt,1", "a.txt,2", "b.txt,3"]


# Scores CSV files the way src/batch_score/batch_score.py does (a DataFrame of row, a float
# prediction, file as a categorical), so append_row takes its pyarrow path; a file named
# a-slow* sleeps, so mini-batches finish out of order on two workers.
FRAME_SCORE = """
import os, time
import numpy as np
import pandas as pd

def init():
    pass

def run(mini_batch):
    parts = []
    for path in mini_batch:
        if os.path.basename(path).startswith("a-slow"):
            time.sleep(0.3)
        df = pd.read_csv(path)
        pred = (df["x"] * np.pi + df["y"] / 3.0) * 1e-3 + 1 / 7
        name = os.path.basename(path)
        parts.append(pd.DataFrame({"row": df.index, "prediction": pred, "file": name}))
    out = pd.concat(parts, ignore_index=True)
    out["file"] = out["file"].astype("category")
    return out
"""


def test_two_workers_write_the_bytes_of_one_process(tmp_path: Path) -> None:
    """Batch output does not depend on how many workers ran it (issue 33): two workers, one
    worker, and the script run in one plain process over the same mini-batches in order
    (written with pandas' to_csv, the reference append_row format) give the same bytes."""
    import importlib.util

    import numpy as np

    code = write_script(tmp_path, FRAME_SCORE)
    folder = tmp_path / "input"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i, name in enumerate(["a-slow.csv", *(f"p{i:02d}.csv" for i in range(7))]):
        x, y = rng.normal(size=(2, 40 + i))
        rows = "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(x, y, strict=True))
        (folder / name).write_text("x,y\n" + rows)
    outputs = {}
    for workers in (2, 1):
        s = spec(code, max_concurrency_per_instance=workers, mini_batch_size=1)
        work = tmp_path / f"w{workers}"
        summary = P.execute(s, P.plan(folder, 1), work / "out", work / "logs", log=lambda _: None)
        assert summary.status == "Completed" and summary.workers == workers, summary
        outputs[workers] = (work / "out" / "predictions.csv").read_bytes()
        # job_result.txt says where the time went (bench/batch.py's profile line).
        result = (work / "logs" / "job_result.txt").read_text()
        assert all(f'"{k}_seconds"' in result for k in ("run", "write", "merge")), result
    load = importlib.util.spec_from_file_location("frame_score", code / "score.py")
    assert load is not None and load.loader is not None
    script = importlib.util.module_from_spec(load)
    load.loader.exec_module(script)
    script.init()
    reference = b"".join(
        script.run(mb.items).to_csv(header=False, index=False, lineterminator="\n").encode()
        for mb in P.plan(folder, 1)
    )
    assert reference.count(b"\n") == sum(40 + i for i in range(8))
    assert outputs[2] == reference
    assert outputs[1] == reference


def test_a_worker_readies_its_writer_before_its_first_mini_batch(tmp_path: Path) -> None:
    """Writing a DataFrame result imports pyarrow's pandas conversion; a worker loads it at
    start-up, so no mini-batch pays it inside its timeout (issue 33: no per-mini-batch
    imports). The script notes which modules appeared between its first and second run()."""
    code = write_script(
        tmp_path,
        """
        import json, os, sys
        import pandas as pd

        seen = None

        def run(mini_batch):
            global seen
            if seen is not None:
                new = sorted(set(sys.modules) - seen)
                with open(os.environ["NEW_MODULES"], "w") as f:
                    json.dump(new, f)
            seen = set(sys.modules)
            return pd.DataFrame({"file": [os.path.basename(p) for p in mini_batch], "x": 0.5})
        """,
    )
    folder = make_folder(tmp_path, {"a.txt": "1", "b.txt": "2"})
    s = spec(code, max_concurrency_per_instance=1)
    s.environment_variables["NEW_MODULES"] = str(tmp_path / "new.json")
    summary, _ = run(tmp_path, s, folder)
    assert summary.status == "Completed", summary
    assert (tmp_path / "out/predictions.csv").read_text() == "a.txt,0.5\nb.txt,0.5\n"
    new = json.loads((tmp_path / "new.json").read_text())
    assert not [m for m in new if m.startswith("pyarrow")], new
