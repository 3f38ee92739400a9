"""The mini-batch executor behind batch deployments and `type: parallel` pipeline steps.

One implementation for both, because Azure ML runs both on the same parallel runtime; only
their defaults differ (`ParallelSpec.for_batch_deployment` / `for_parallel_job`, reference
§23-25). The contract reproduced here:

* Inputs: a folder is split into mini-batches of files (sorted by relative path, hidden files
  skipped); a single CSV/TSV file or an MLTable folder is split by rows and each mini-batch
  reaches `run()` as a pandas DataFrame indexed by source row number.
* `instance_count x max_concurrency_per_instance` worker processes (never more than there are
  mini-batches), each calling `init()` once and `run(mini_batch)` per mini-batch.
* A `run()` that raises, returns fewer elements than it was given items, or outlives
  `retry_settings.timeout` fails that attempt; a hung or crashed worker is killed (its whole
  process group) and respawned. A mini-batch is retried `max_retries` times, then failed.
* `error_threshold` counts failed items (files, or rows for tabular input) and
  `mini_batch_error_threshold` failed mini-batches; -1 tolerates all. Exceeding either ends
  the job as Failed at once.
* `append_row`: results are concatenated into `output_file_name` in mini-batch order, which
  is input file order then row order (deterministic, unlike Azure's completion order); failed
  mini-batches contribute nothing. `summary_only` writes no output file.
* Logs under `log_dir`: `job_progress_overview.txt`, `job_error.txt` (each failure with its
  items and exception), `job_result.txt` (the summary as JSON), `user/stdout/worker-N.txt`
  (what a worker prints outside `run()`) and `user/mini_batches/mb-NNNNN.txt` (what one
  mini-batch printed, every attempt, with tracebacks).

Call `execute(spec, mini_batches, output_dir, log_dir, log=..., cancel=...)`; it blocks and
returns a `Summary`. Only the standard library (and numpy, to split CSV rows) is imported.
"""

from __future__ import annotations

import json
import math
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput

# reference §25 (reference-yaml-deployment-batch): model batch deployment settings.
BATCH_DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "mini_batch_size": 10,
    "max_concurrency_per_instance": 1,
    "instance_count": 1,
    "error_threshold": -1,
    "mini_batch_error_threshold": -1,
    "max_retries": 3,
    "timeout": 30,
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "logging_level": "info",
}
# reference §23 (reference-yaml-job-parallel): parallel job keys. max_concurrency_per_instance
# takes the SDK's dump default (1), which is what `az ml` sends for a YAML without the key.
# append_row is on only when `task.append_row_to` is set; the file name is the parallel
# runtime's `parallel_run_step.txt` unless `--append_row_file_name` is in program_arguments.
PARALLEL_JOB_DEFAULTS: dict[str, Any] = {
    "mini_batch_size": 1,
    "max_concurrency_per_instance": 1,
    "instance_count": 1,
    "error_threshold": -1,
    "mini_batch_error_threshold": -1,
    "max_retries": 2,
    "timeout": 60,
    "output_action": "summary_only",
    "output_file_name": "parallel_run_step.txt",
    "logging_level": "INFO",
}
# A tabular input with no mini_batch_size: the parallel runtime's documented 1 MB.
DEFAULT_TABULAR_BATCH = "1MB"
_WORKER_STOP_GRACE = 5.0
# Mini-batches handed to a worker at once: the one it runs and the next, waiting in its stdin
# pipe, so a worker never idles while the executor merges output (~10% of throughput with
# 2 workers on 2 cores, bench/batch.py). The timeout still counts from each run's start.
_WORKER_QUEUE = 2


@dataclass
class ParallelSpec:
    """Everything the executor needs about the user's code and the run settings."""

    code_dir: Path
    entry_script: str
    program_arguments: list[str] = field(default_factory=list)
    mini_batch_size: int | str = 1
    max_concurrency_per_instance: int = 1
    instance_count: int = 1
    max_retries: int = 2
    timeout: float = 60
    error_threshold: int = -1
    mini_batch_error_threshold: int = -1
    output_action: str = "summary_only"
    output_file_name: str = "parallel_run_step.txt"
    logging_level: str = "INFO"
    environment_variables: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable

    @property
    def workers(self) -> int:
        return max(1, int(self.instance_count)) * max(1, int(self.max_concurrency_per_instance))

    @classmethod
    def for_batch_deployment(
        cls,
        settings: dict[str, Any],
        *,
        code_dir: Path,
        entry_script: str,
        environment_variables: dict[str, str] | None = None,
        python: str | None = None,
    ) -> ParallelSpec:
        """From a model batch deployment's settings (`settings:` of the modelBatchDeployment
        schema, or the flat keys of the older batchDeployment schema, already merged with
        invoke-time overrides such as `--mini-batch-size`)."""
        s = _merge(BATCH_DEPLOYMENT_DEFAULTS, settings)
        retry = settings.get("retry_settings") or {}
        env = {**(settings.get("environment_variables") or {}), **(environment_variables or {})}
        return cls(
            code_dir=Path(code_dir),
            entry_script=entry_script,
            mini_batch_size=s["mini_batch_size"],
            max_concurrency_per_instance=int(s["max_concurrency_per_instance"]),
            instance_count=int(s["instance_count"]),
            max_retries=int(
                _first(retry.get("max_retries"), BATCH_DEPLOYMENT_DEFAULTS["max_retries"])
            ),
            timeout=float(_first(retry.get("timeout"), BATCH_DEPLOYMENT_DEFAULTS["timeout"])),
            error_threshold=int(s["error_threshold"]),
            mini_batch_error_threshold=-1,
            output_action=str(s["output_action"]).lower(),
            output_file_name=str(s["output_file_name"]),
            logging_level=str(s["logging_level"]),
            environment_variables={k: str(v) for k, v in env.items()},
            python=python or sys.executable,
        )

    @classmethod
    def for_parallel_job(
        cls,
        job: dict[str, Any],
        *,
        code_dir: Path,
        program_arguments: str | list[str] | None = None,
        python: str | None = None,
    ) -> ParallelSpec:
        """From a parallel step/component as azure-ai-ml's `_to_dict()` gives it. The caller
        renders `${{inputs.X}}` in program_arguments first and passes the result."""
        s = _merge(PARALLEL_JOB_DEFAULTS, job)
        task = job.get("task") or {}
        retry = job.get("retry_settings") or {}
        resources = job.get("resources") or {}
        args = program_arguments
        if args is None:
            args = task.get("program_arguments") or task.get("args") or ""
        argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
        predefined = _predefined_args(argv)
        append = bool(task.get("append_row_to"))
        error_threshold = _first(job.get("error_threshold"), predefined.get("error_threshold"), -1)
        return cls(
            code_dir=Path(code_dir),
            entry_script=str(task.get("entry_script")),
            program_arguments=argv,
            mini_batch_size=s["mini_batch_size"],
            max_concurrency_per_instance=int(s["max_concurrency_per_instance"]),
            instance_count=int(_first(resources.get("instance_count"), 1)),
            max_retries=int(_first(retry.get("max_retries"), PARALLEL_JOB_DEFAULTS["max_retries"])),
            timeout=float(_first(retry.get("timeout"), PARALLEL_JOB_DEFAULTS["timeout"])),
            error_threshold=int(error_threshold),
            mini_batch_error_threshold=int(s["mini_batch_error_threshold"]),
            output_action="append_row" if append else "summary_only",
            output_file_name=str(
                predefined.get("append_row_file_name") or PARALLEL_JOB_DEFAULTS["output_file_name"]
            ),
            logging_level=str(s["logging_level"]),
            environment_variables={
                k: str(v) for k, v in (job.get("environment_variables") or {}).items()
            },
            python=python or sys.executable,
        )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {k: _first(given.get(k), v) for k, v in defaults.items()}


def _predefined_args(argv: list[str]) -> dict[str, str]:
    """The parallel runtime's own `--name value` arguments that amlocal honours."""
    known = {"error_threshold", "append_row_file_name"}
    out: dict[str, str] = {}
    for i, a in enumerate(argv):
        name, _, value = a.removeprefix("--").partition("=")
        if a.startswith("--") and name in known:
            out[name] = value if value else (argv[i + 1] if i + 1 < len(argv) else "")
    return out


# -- mini-batches ------------------------------------------------------------------------
@dataclass
class MiniBatch:
    """One unit of work: files (kind "files") or CSV row ranges (kind "rows")."""

    index: int
    kind: str
    items: list[Any]
    n_items: int
    label: str


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}


def parse_mini_batch_size(value: int | str) -> tuple[int | None, int | None]:
    """(count, bytes): `10` is a count (files, or rows for tabular input); `100kb`, `1MB`
    are approximate sizes in bytes, as the parallel runtime accepts for tabular data."""
    if isinstance(value, bool):
        raise InvalidInput(f"mini_batch_size: expected a number or a size like 10kb, got {value}")
    if isinstance(value, int):
        n = value
        if n < 1:
            raise InvalidInput(f"mini_batch_size must be at least 1, got {n}")
        return n, None
    m = _SIZE.match(str(value))
    if not m:
        raise InvalidInput(f"mini_batch_size: expected a number or a size like 10kb, got {value!r}")
    unit = m[2].lower() if m[2] else None
    if unit is None:
        return parse_mini_batch_size(int(float(m[1])))
    size = int(float(m[1]) * _UNITS[unit])
    if size < 1:
        raise InvalidInput(f"mini_batch_size must be positive, got {value!r}")
    return None, size


def list_files(folder: Path) -> list[Path]:
    """Files under a folder, recursively, sorted by relative path; hidden names skipped."""
    out = []
    for dirpath, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(dirpath) / n for n in names if not n.startswith("."))
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def plan(
    path: Path, mini_batch_size: int | str | None, *, split: str | None = None
) -> list[MiniBatch]:
    """Split an input into mini-batches. `split` is "files" or "rows"; by default a folder
    is split by files (an MLTable folder by rows) and a single file by rows."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"input {path} does not exist")
    is_mltable = path.is_dir() and (path / "MLTable").is_file()
    split = split or ("rows" if path.is_file() or is_mltable else "files")
    if split == "files":
        files = list_files(path) if path.is_dir() else [path]
        if not files:
            raise InvalidInput(f"input folder {path} contains no files: nothing to score")
        count, size = parse_mini_batch_size(mini_batch_size or 1)
        return _file_batches(files, path if path.is_dir() else path.parent, count, size)
    files = mltable_files(path) if is_mltable else list_files(path) if path.is_dir() else [path]
    files = [f for f in files if f.suffix.lower() in TABULAR_SUFFIXES]
    if not files:
        raise InvalidInput(f"input {path} has no delimited text (.csv/.tsv) files to split by rows")
    count, size = parse_mini_batch_size(mini_batch_size or DEFAULT_TABULAR_BATCH)
    batches: list[MiniBatch] = []
    for f in files:
        for rng in split_rows(f, rows=count, size=size):
            label = f"{f.name} rows {rng['first_row']}-{rng['first_row'] + rng['rows'] - 1}"
            batches.append(MiniBatch(len(batches), "rows", [rng], rng["rows"], label))
    if not batches:
        raise InvalidInput(f"input {path} has no data rows: nothing to score")
    return batches


def _file_batches(
    files: list[Path], root: Path, count: int | None, size: int | None
) -> list[MiniBatch]:
    groups: list[list[Path]] = []
    if count is not None:
        groups = [files[i : i + count] for i in range(0, len(files), count)]
    else:
        cur: list[Path] = []
        total = 0
        for f in files:
            cur.append(f)
            total += f.stat().st_size
            if total >= (size or 1):
                groups.append(cur)
                cur, total = [], 0
        if cur:
            groups.append(cur)
    out = []
    for i, g in enumerate(groups):
        names = [_rel(f, root) for f in g]
        label = ", ".join(names) if len(names) <= 4 else f"{names[0]} ... {names[-1]}"
        out.append(MiniBatch(i, "files", [str(f) for f in g], len(g), label))
    return out


def _rel(f: Path, root: Path) -> str:
    try:
        return f.relative_to(root).as_posix()
    except ValueError:
        return str(f)


def mltable_files(folder: Path) -> list[Path]:
    """Files an MLTable names under `paths:` (`file`, `folder`, or `pattern` entries)."""
    import yaml

    spec = yaml.safe_load((folder / "MLTable").read_text()) or {}
    out: list[Path] = []
    for entry in spec.get("paths") or []:
        for key in ("file", "folder", "pattern"):
            if key in entry:
                target = str(entry[key]).removeprefix("file://")
                if key == "pattern":
                    out.extend(sorted(folder.glob(target.removeprefix("./"))))
                else:
                    p = (folder / target).resolve()
                    out.extend(list_files(p) if key == "folder" else [p])
    return [p for p in out if p.is_file()]


def split_rows(path: Path, *, rows: int | None, size: int | None) -> list[dict[str, Any]]:
    """Row ranges of a delimited text file: byte offsets cut at line ends, never reading more
    than a chunk at a time. Blank lines are not rows (pandas skips them). Quoted fields
    containing newlines are not supported: such a file must be split by files instead."""
    import mmap

    import numpy as np

    sep = TABULAR_SUFFIXES.get(path.suffix.lower(), ",")
    n_bytes = path.stat().st_size
    if n_bytes == 0:
        return []
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = np.frombuffer(mm, dtype=np.uint8)
        chunk = 1 << 24
        ends = np.concatenate(
            [np.flatnonzero(buf[i : i + chunk] == 10) + i for i in range(0, n_bytes, chunk)]
        )
        if not len(ends) or ends[-1] != n_bytes - 1:  # last line without a newline
            ends = np.append(ends, n_bytes)
        header_end = int(ends[0]) + 1
        ends = ends[1:]
        if not len(ends):
            return []
        starts = np.concatenate([[header_end], ends[:-1] + 1])
        lengths = ends - starts
        first = buf[np.minimum(starts, n_bytes - 1)]
        blank = (lengths == 0) | ((lengths == 1) & (first == 13))
        del buf, first
    keep = np.flatnonzero(~blank)
    if not len(keep):
        return []
    out = []
    if rows is not None:
        cuts = list(range(0, len(keep), rows))
    else:
        cuts, nxt = [], 0
        offsets = starts[keep]
        while nxt < len(keep):
            cuts.append(nxt)
            nxt = max(nxt + 1, int(np.searchsorted(offsets, offsets[nxt] + (size or 1))))
    cuts.append(len(keep))
    for a, b in zip(cuts, cuts[1:], strict=False):
        out.append(
            {
                "path": str(path),
                "sep": sep,
                "header_end": header_end,
                "start": int(starts[keep[a]]),
                "end": min(int(ends[keep[b - 1]]) + 1, n_bytes),
                "first_row": a,
                "rows": b - a,
            }
        )
    return out


# -- progress and results ------------------------------------------------------------------
@dataclass
class Progress:
    """A snapshot for progress lines and job records."""

    total: int
    done: int = 0
    failed: int = 0
    items_total: int = 0
    items_done: int = 0
    items_failed: int = 0
    rows: int = 0
    elapsed: float = 0.0
    rows_per_second: float = 0.0
    workers: int = 0

    def line(self) -> str:
        pct = 100.0 * (self.done + self.failed) / self.total if self.total else 100.0
        return (
            f"progress: mini-batches {self.done + self.failed}/{self.total} ({pct:.0f}%): "
            f"{self.done} succeeded, {self.failed} failed; items {self.items_done}/"
            f"{self.items_total} ({self.items_failed} failed); {self.rows} rows, "
            f"{self.rows_per_second:,.0f} rows/s; {self.workers} worker(s); "
            f"{self.elapsed:.1f}s"
        )


@dataclass
class Summary:
    """What a finished execution reports (also written to logs/job_result.txt)."""

    status: str  # Completed | Failed | Canceled
    error: str | None
    mini_batches: int
    mini_batches_succeeded: int
    mini_batches_failed: int
    items: int
    items_succeeded: int
    items_failed: int
    rows: int
    workers: int
    output_file: str | None
    failures: list[dict[str, Any]]
    wall_seconds: float
    startup_seconds: float | None  # execute() start -> all initial workers ready
    first_mini_batch_seconds: float | None  # execute() start -> first mini-batch dispatched
    processing_seconds: float | None  # first worker ready -> last mini-batch finished
    # Throughput once workers are up: rows finished after the last initial worker became
    # ready, per second until the end (start-up excluded); falls back to rows /
    # processing_seconds when everything finished before all workers were up.
    rows_per_second: float | None
    worker_peak_rss_mb: float | None
    retries: int = 0
    worker_restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- workers -------------------------------------------------------------------------------
class _Worker:
    """One worker subprocess in its own process group, and the tasks it was given: the one
    it is running first, then at most one waiting in its stdin pipe."""

    def __init__(self, wid: int, spec: ParallelSpec, env: dict[str, str], log_dir: Path) -> None:
        self.wid = wid
        self.log = log_dir / "user" / "stdout" / f"worker-{wid:03d}.txt"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as stderr:  # until the worker redirects its own output
            self.proc = subprocess.Popen(
                [spec.python, "-m", "amlocal.jobs.parallel_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=spec.code_dir,
                env=env,
                start_new_session=True,
            )
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self.buf = b""
        self.ready = False
        self.tasks: deque[tuple[MiniBatch, int]] = deque()
        self.deadline = math.inf  # of the running task
        config = {
            "worker_id": wid,
            "code_dir": str(spec.code_dir),
            "entry_script": spec.entry_script,
            "program_arguments": spec.program_arguments,
            "logging_level": spec.logging_level,
            "worker_log": str(self.log),
        }
        self.send({"config": config})

    def send(self, msg: dict[str, Any]) -> bool:
        try:
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            return True
        except (BrokenPipeError, OSError):
            return False

    def read_messages(self) -> tuple[list[dict[str, Any]], bool]:
        """Complete messages available now, and whether the worker's stdout hit EOF."""
        eof = False
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                eof = True
                break
            self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(ln) for ln in lines if ln.strip()], eof

    def kill(self) -> None:
        """SIGKILL the worker's process group (a hung run() may have children) and reap."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.close()

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def worker_env(spec: ParallelSpec, output_dir: Path) -> dict[str, str]:
    """The environment of every worker: the caller's, the spec's, and what Azure ML sets."""
    env = {**os.environ, **spec.environment_variables}
    env["PYTHONUNBUFFERED"] = "1"
    # Parallelism comes from worker processes; BLAS/OpenMP pools sized for the whole machine
    # in every worker would oversubscribe the cores. A value set by the user wins.
    threads = str(max(1, (os.cpu_count() or 1) // spec.workers))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    env.setdefault("AZUREML_BI_OUTPUT_PATH", str(output_dir))
    if Path(spec.python).resolve() != Path(sys.executable).resolve():
        # Another interpreter (an isolated environment) still needs to find the worker module.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


# -- the executor --------------------------------------------------------------------------
class _Run:
    """State of one execution; `execute()` is the public entry point."""

    def __init__(
        self,
        spec: ParallelSpec,
        batches: list[MiniBatch],
        output_dir: Path,
        log_dir: Path,
        log: Callable[[str], None],
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
        progress_interval: float,
    ) -> None:
        self.spec, self.batches = spec, batches
        self.output_dir, self.log_dir = Path(output_dir), Path(log_dir)
        self._log, self.on_progress = log, on_progress
        self.cancel = cancel or threading.Event()
        self.progress_interval = progress_interval
        self.t0 = time.monotonic()
        self.env = worker_env(spec, self.output_dir)
        self.pending: deque[tuple[MiniBatch, int]] = deque((b, 1) for b in batches)
        self.final: dict[int, bool] = {}
        self.failures: list[dict[str, Any]] = []
        self.progress = Progress(total=len(batches), items_total=sum(b.n_items for b in batches))
        self.workers: dict[int, _Worker] = {}
        self.sel = selectors.DefaultSelector()
        self.next_wid = 0
        self.error: str | None = None
        self.status = "Running"
        self.first_ready: float | None = None
        self.all_ready: float | None = None
        self.first_dispatch: float | None = None
        self.last_done: float | None = None
        self.rss = 0.0
        self.rows_before_all_ready = 0
        self.retries = 0
        self.restarts = 0
        self.last_progress = 0.0
        self.merge_next = 0
        self.out_file: Path | None = None
        self.parts: Path | None = None  # per-mini-batch results awaiting their turn
        for sub in ("user/stdout", "user/mini_batches"):
            (self.log_dir / sub).mkdir(parents=True, exist_ok=True)
        self.progress_file = (self.log_dir / "job_progress_overview.txt").open("a")
        self.error_file = (self.log_dir / "job_error.txt").open("a")

    # ---- logging
    def log(self, line: str) -> None:
        self._log(line)

    def report_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < self.progress_interval:
            return
        self.last_progress = now
        p = self.progress
        p.elapsed = now - self.t0
        p.workers = sum(1 for w in self.workers.values() if w.ready)
        if self.first_ready is not None and p.rows:
            p.rows_per_second = p.rows / max(now - self.first_ready, 1e-9)
        line = p.line()
        self.progress_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        self.progress_file.flush()
        self.log(line)
        if self.on_progress:
            self.on_progress(p)

    # ---- workers
    def spawn(self) -> None:
        wid = self.next_wid
        self.next_wid += 1
        w = _Worker(wid, self.spec, self.env, self.log_dir)
        self.workers[wid] = w
        self.sel.register(w.proc.stdout, selectors.EVENT_READ, wid)  # type: ignore[arg-type]

    def retire(self, w: _Worker, kill: bool) -> None:
        try:
            self.sel.unregister(w.proc.stdout)  # type: ignore[arg-type]
        except (KeyError, ValueError):
            pass
        (w.kill if kill else w.close)()
        self.workers.pop(w.wid, None)

    def dispatch(self) -> None:
        # Every idle worker gets a task before any gets a second one to queue.
        for depth in range(1, _WORKER_QUEUE + 1):
            for w in list(self.workers.values()):
                if w.ready and len(w.tasks) < depth:
                    if not self.pending or self.error:
                        return
                    self.assign(w, *self.pending.popleft())

    def assign(self, w: _Worker, mb: MiniBatch, attempt: int) -> None:
        out = str(self.parts / f"mb-{mb.index:05d}.part") if self.parts else None
        task = {
            "mb": mb.index,
            "attempt": attempt,
            "kind": mb.kind,
            "items": mb.items,
            "n_items": mb.n_items,
            "label": mb.label,
            "out": out,
            "log": str(self.mb_log(mb)),
        }
        if not w.tasks:  # it starts at once; a queued task's clock starts when it does
            w.deadline = time.monotonic() + self.spec.timeout
        w.tasks.append((mb, attempt))
        if self.first_dispatch is None:
            self.first_dispatch = time.monotonic()
        if not w.send(task):  # died between messages: noticed on EOF
            w.deadline = time.monotonic()

    def mb_log(self, mb: MiniBatch) -> Path:
        return self.log_dir / "user" / "mini_batches" / f"mb-{mb.index:05d}.txt"

    # ---- outcomes
    def attempt_failed(self, mb: MiniBatch, attempt: int, error: str) -> None:
        total = 1 + self.spec.max_retries
        where = f"[{mb.label}]"
        self.log(
            f"mini-batch {mb.index} {where} attempt {attempt}/{total} failed: {error} "
            f"(log: {self.mb_log(mb).relative_to(self.log_dir)})"
        )
        if attempt < total:
            self.retries += 1
            self.pending.append((mb, attempt + 1))
            return
        self.final[mb.index] = False
        self.progress.failed += 1
        self.progress.items_failed += mb.n_items
        failure = {"mini_batch": mb.index, "items": mb.label, "attempts": attempt, "error": error}
        self.failures.append(failure)
        self.error_file.write(
            f"mini-batch {mb.index} failed after {attempt} attempt(s): items: {mb.label}: {error}\n"
        )
        self.error_file.flush()
        self.check_thresholds()
        self.merge()
        self.report_progress(force=True)

    def check_thresholds(self) -> None:
        s, p = self.spec, self.progress
        if s.error_threshold >= 0 and p.items_failed > s.error_threshold:
            self.error = (
                f"error_threshold exceeded: {p.items_failed} failed item(s) > "
                f"error_threshold {s.error_threshold}; first failure: {self.failures[0]['items']}:"
                f" {self.failures[0]['error']}"
            )
        elif s.mini_batch_error_threshold >= 0 and p.failed > s.mini_batch_error_threshold:
            self.error = (
                f"mini_batch_error_threshold exceeded: {p.failed} failed mini-batch(es) > "
                f"{s.mini_batch_error_threshold}; first failure: {self.failures[0]['items']}: "
                f"{self.failures[0]['error']}"
            )

    def succeeded(self, mb: MiniBatch, msg: dict[str, Any]) -> None:
        self.final[mb.index] = True
        self.progress.done += 1
        self.progress.items_done += mb.n_items
        self.progress.rows += int(msg.get("rows") or 0)
        self.last_done = time.monotonic()
        self.merge()
        self.report_progress(force=len(self.final) == len(self.batches))

    def merge(self) -> None:
        """Append finished parts to the output file in mini-batch order, as soon as the next
        one in order is final, so the file grows while the job runs and little waits at the
        end."""
        if self.out_file is None or self.parts is None:
            return
        with self.out_file.open("ab") as out:
            while self.merge_next in self.final:
                idx = self.merge_next
                part = self.parts / f"mb-{idx:05d}.part"
                if self.final[idx] and part.exists():
                    with part.open("rb") as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                part.unlink(missing_ok=True)
                self.merge_next += 1

    def handle(self, w: _Worker, msg: dict[str, Any]) -> None:
        ev = msg.get("ev")
        if ev == "ready":
            w.ready = True
            now = time.monotonic()
            self.first_ready = self.first_ready or now
            if self.all_ready is None and all(x.ready for x in self.workers.values()):
                self.all_ready = now
                self.rows_before_all_ready = self.progress.rows
                self.log(
                    f"{len(self.workers)} worker(s) ready in {now - self.t0:.2f}s "
                    f"(start-up: interpreter, imports and init())"
                )
        elif ev == "init_failed":
            self.error = f"init() failed on worker {w.wid}: {msg.get('error')}"
            self.log(f"{self.error}\n{msg.get('traceback', '')}".rstrip())
        elif ev == "done" and w.tasks:
            mb, attempt = w.tasks.popleft()
            # The worker has moved on to its queued task, if it has one.
            w.deadline = time.monotonic() + self.spec.timeout if w.tasks else math.inf
            self.rss = max(self.rss, float(msg.get("rss_mb") or 0))
            if msg.get("ok"):
                # Give this worker its next mini-batch before the bookkeeping (merging the
                # output part, progress): the worker idles until it has one.
                self.dispatch()
                self.succeeded(mb, msg)
            else:
                self.attempt_failed(mb, attempt, str(msg.get("error")))

    def worker_lost(self, w: _Worker, reason: str) -> None:
        """A worker died or was killed: fail its running attempt, put the task it had not
        started back at the head of the queue, and start a replacement."""
        task = w.tasks.popleft() if w.tasks else None
        self.pending.extendleft(reversed(w.tasks))
        w.tasks.clear()
        self.retire(w, kill=True)
        if not w.ready:
            self.error = self.error or (
                f"worker {w.wid} exited before init() finished "
                f"(exit code {w.proc.returncode}); see {w.log}"
            )
            return
        if task is not None:
            self.attempt_failed(task[0], task[1], reason)
        if not self.error and (self.pending or task is not None):
            self.restarts += 1
            self.spawn()

    # ---- main loop
    def run(self) -> Summary:
        if self.spec.output_action == "append_row":
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.parts = Path(tempfile.mkdtemp(prefix=".parallel-parts-", dir=self.log_dir))
            self.out_file = self.output_dir / self.spec.output_file_name
            self.out_file.write_bytes(b"")
        n = min(self.spec.workers, len(self.batches))
        self.log(
            f"{len(self.batches)} mini-batch(es), {self.progress.items_total} item(s); "
            f"starting {n} worker(s) ({self.spec.instance_count} instance(s) x "
            f"{self.spec.max_concurrency_per_instance} per instance)"
        )
        try:
            try:
                for _ in range(n):
                    self.spawn()
                self.loop()
            finally:
                self.shutdown()
            return self.summary()
        finally:
            self.progress_file.close()
            self.error_file.close()
            if self.parts is not None:
                shutil.rmtree(self.parts, ignore_errors=True)

    def loop(self) -> None:
        while len(self.final) < len(self.batches) and not self.error:
            if self.cancel.is_set():
                self.status = "Canceled"
                self.error = "canceled"
                return
            if not self.workers:  # every worker was lost and none could be replaced
                self.error = self.error or "no workers left"
                return
            self.dispatch()
            now = time.monotonic()
            wait = min([w.deadline for w in self.workers.values()] + [now + 0.25]) - now
            for key, _ in self.sel.select(max(wait, 0.0)):
                w = self.workers.get(key.data)
                if w is None:
                    continue
                msgs, eof = w.read_messages()
                for msg in msgs:
                    self.handle(w, msg)
                if eof:
                    w.proc.wait()
                    self.worker_lost(w, f"worker process exited with code {w.proc.returncode}")
            now = time.monotonic()
            for w in list(self.workers.values()):
                if w.tasks and now >= w.deadline:
                    self.worker_lost(
                        w,
                        f"TimeoutError: run() did not return within retry_settings.timeout="
                        f"{self.spec.timeout:g}s; worker {w.wid} was killed and replaced",
                    )
        if self.error and self.status == "Running":
            self.status = "Failed"

    def shutdown(self) -> None:
        """Stop workers: politely (shutdown() runs) when idle, by SIGKILL otherwise."""
        deadline = time.monotonic() + _WORKER_STOP_GRACE
        stopping = []
        for w in list(self.workers.values()):
            if w.ready and not w.tasks and w.send({"stop": True}):
                stopping.append(w)
            else:
                self.retire(w, kill=True)
        for w in stopping:
            try:
                w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            self.retire(w, kill=w.proc.poll() is None)
        self.sel.close()

    def summary(self) -> Summary:
        if self.status == "Running":
            self.status = "Failed" if self.error else "Completed"
        end = time.monotonic()
        p = self.progress
        processing = rate = None
        if self.first_ready is not None and self.last_done is not None:
            processing = max(self.last_done - self.first_ready, 1e-9)
            rate = p.rows / processing
            if self.all_ready is not None and self.last_done > self.all_ready:
                rate = (p.rows - self.rows_before_all_ready) / (self.last_done - self.all_ready)
        s = Summary(
            status=self.status,
            error=None if self.status == "Completed" else self.error,
            mini_batches=p.total,
            mini_batches_succeeded=p.done,
            mini_batches_failed=p.failed,
            items=p.items_total,
            items_succeeded=p.items_done,
            items_failed=p.items_failed,
            rows=p.rows,
            workers=self.next_wid - self.restarts,
            output_file=str(self.out_file) if self.out_file else None,
            failures=self.failures,
            wall_seconds=end - self.t0,
            startup_seconds=None if self.all_ready is None else self.all_ready - self.t0,
            first_mini_batch_seconds=(
                None if self.first_dispatch is None else self.first_dispatch - self.t0
            ),
            processing_seconds=processing,
            rows_per_second=rate,
            worker_peak_rss_mb=self.rss or None,
            retries=self.retries,
            worker_restarts=self.restarts,
        )
        (self.log_dir / "job_result.txt").write_text(json.dumps(s.to_dict(), indent=2) + "\n")
        if len(self.final) < len(self.batches):
            self.report_progress(force=True)
        self.log(
            f"parallel run {s.status}: {p.done}/{p.total} mini-batch(es) succeeded, "
            f"{p.failed} failed; {p.items_failed} failed item(s); {p.rows} rows"
            + (f"; {s.error}" if s.error else "")
        )
        return s


def execute(
    spec: ParallelSpec,
    mini_batches: Iterable[MiniBatch],
    output_dir: Path,
    log_dir: Path,
    *,
    log: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 1.0,
) -> Summary:
    """Run every mini-batch through `spec`'s entry script; block until done, failed (a
    threshold exceeded, init() failed) or `cancel` is set. Never raises for user-code errors:
    they are in the Summary and the logs. Raises InvalidInput for an unusable spec."""
    batches = list(mini_batches)
    if not batches:
        raise InvalidInput("nothing to run: the input produced no mini-batches")
    if not (Path(spec.code_dir) / spec.entry_script).is_file():
        raise InvalidInput(f"entry_script {spec.entry_script} not found in {spec.code_dir}")
    if spec.output_action not in ("append_row", "summary_only"):
        raise InvalidInput(
            f"output_action must be append_row or summary_only, got {spec.output_action!r}"
        )
    if spec.timeout <= 0:
        raise InvalidInput(f"retry_settings.timeout must be positive, got {spec.timeout}")
    runner = _Run(
        spec,
        batches,
        output_dir,
        log_dir,
        log or (lambda line: print(line, flush=True)),
        on_progress,
        cancel,
        progress_interval,
    )
    return runner.run()
