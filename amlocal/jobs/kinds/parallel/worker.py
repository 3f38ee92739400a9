"""One parallel worker process: `python -m amlocal.jobs.kinds.parallel.worker`.

Azure ML's parallel runtime starts `max_concurrency_per_instance` worker processes per node;
each imports the entry script, calls `init()` once and then `run(mini_batch)` for every
mini-batch it is given. This module is that process. It imports nothing heavy itself (pandas
only when a mini-batch needs it), so start-up costs what the user's script costs.

Protocol with the executor (`amlocal.jobs.kinds.parallel`), one JSON object per line:
  stdin  <- {"config": {...}} first, then {"mb": i, "attempt": a, "items": [...], ...}
            per mini-batch, and {"stop": true} to end (calls `shutdown()` if defined).
  stdout -> {"ev": "ready"} after `init()`, {"ev": "init_failed"} if it raised, and
            {"ev": "done", "mb": i, "ok": bool, ...} after each mini-batch.
The protocol streams are duplicated away from fds 0/1/2 before user code runs: anything the
script prints (Python or C) lands in the worker log, or in the mini-batch's own log while
`run()` executes, and can never corrupt the protocol.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO


def _redirect_std(path: Path) -> None:
    """Point fds 1 and 2 (and sys.stdout/err) at `path`, appending."""
    sys.stdout.flush()
    sys.stderr.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _rss_mb() -> float:
    """Peak resident set size of this process, in MB (Linux reports KB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _load_entry(code_dir: Path, entry_script: str) -> Any:
    """Import the entry script as a module, from the code folder (which is also the cwd)."""
    path = (code_dir / entry_script).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"entry_script {entry_script} not found in {code_dir}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{entry_script} defines no run(mini_batch) function")
    return module


def _rows_frame(items: list[dict[str, Any]]) -> Any:
    """Tabular mini-batch: read each byte range of a CSV (with its header line) into one
    DataFrame, indexed by the row numbers in the source file."""
    import pandas as pd

    frames = []
    for it in items:
        with open(it["path"], "rb") as f:
            header = f.read(it["header_end"])
            f.seek(it["start"])
            body = f.read(it["end"] - it["start"])
        df = pd.read_csv(io.BytesIO(header + body), sep=it.get("sep", ","))
        df.index = range(it["first_row"], it["first_row"] + len(df))
        frames.append(df)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    # Which file the rows came from, for scripts that report it (pandas keeps attrs on copies).
    frame.attrs["source"] = os.path.basename(items[0]["path"])
    return frame


def _count(result: Any) -> int:
    """How many items a run() result reports as done: its length (None counts as 0)."""
    if result is None:
        return 0
    try:
        return len(result)
    except TypeError:
        return 1


def serialize_rows(result: Any) -> bytes:
    """Rows as `append_row` writes them: CSV without a header (Azure ML drops DataFrame column
    names), one line per DataFrame row or list element; list elements that are sequences
    become comma-separated fields, scalars are written as-is.

    DataFrames of numbers and strings take a pyarrow fast path (C++ float formatting, same
    shortest round-trip text as pandas); anything else goes through pandas' `to_csv`.
    """
    if result is None:
        return b""
    # A DataFrame result means its script imported pandas; a script returning lists must not
    # pay pandas' import (about 1 s, 3 s on a busy 2-core box) inside its run() timeout.
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(result, pd.DataFrame):
        return _frame_csv(result, pd)
    if pd is not None and isinstance(result, pd.Series):
        return _frame_csv(result.to_frame(), pd)
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for el in result if not isinstance(result, (str, bytes)) else [result]:
        if hasattr(el, "tolist"):
            el = el.tolist()
        writer.writerow(el if isinstance(el, (list, tuple)) else [el])
    return buf.getvalue().encode()


def _arrow_csv(df: Any) -> bytes | None:
    """pyarrow's CSV writer, or None when pyarrow is missing or the frame does not fit it."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        table = pa.Table.from_pandas(df, preserve_index=False, nthreads=1)
    except (TypeError, ValueError, pa.ArrowException):
        return None
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type) and pa.types.is_string(col.type.value_type):
            values = col.combine_chunks().dictionary  # categoricals: check the few values
            col = pc.cast(col, pa.string())
        elif pa.types.is_string(col.type):
            values = pc.unique(col)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            columns.append(col)
            continue
        else:
            return None
        # Strings are written bare, as pandas writes them, unless one needs quoting.
        if pc.any(pc.match_substring_regex(values, '[,"\r\n]')).as_py():
            return None
        columns.append(col)
    table = pa.table(columns, names=table.column_names)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return bytes(sink.getvalue().to_pybytes())


def ready_writer() -> None:
    """Load what writing a DataFrame result takes (pyarrow's pandas conversion and CSV
    writer) by writing a tiny frame once, during start-up: otherwise each worker's first
    mini-batch pays those imports inside its timeout (tens of milliseconds, more when busy).
    Only when the script has imported pandas, i.e. may return DataFrames; never fatal."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return
    try:
        serialize_rows(pd.DataFrame({"i": [1], "x": [0.5], "s": pd.Categorical(["a"])}))
    except Exception:  # noqa: S110 - a first result then pays it, as it would have
        pass


def _frame_csv(df: Any, pd: Any) -> bytes:
    simple = all(
        pd.api.types.is_integer_dtype(t)
        or pd.api.types.is_float_dtype(t)
        or pd.api.types.is_object_dtype(t)
        or pd.api.types.is_string_dtype(t)
        or isinstance(t, pd.CategoricalDtype)
        for t in df.dtypes
    )
    if simple and len(df):
        fast = _arrow_csv(df)
        if fast is not None:
            return fast
    return str(df.to_csv(header=False, index=False, lineterminator="\n")).encode()


class Worker:
    """The loop of one worker: read a task, run it, report."""

    def __init__(self, proto_in: BinaryIO, proto_out: BinaryIO) -> None:
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.module: Any = None
        self.cfg: dict[str, Any] = {}

    def send(self, msg: dict[str, Any]) -> None:
        self.proto_out.write(json.dumps(msg).encode() + b"\n")
        self.proto_out.flush()

    def start(self) -> bool:
        line = self.proto_in.readline()
        if not line:
            return False
        self.cfg = cfg = json.loads(line)["config"]
        _redirect_std(Path(cfg["worker_log"]))
        level = str(cfg.get("logging_level") or "INFO").upper()
        logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr)
        code_dir = Path(cfg["code_dir"])
        os.chdir(code_dir)
        sys.path.insert(0, str(code_dir))
        sys.argv = [cfg["entry_script"], *cfg.get("program_arguments", [])]
        t0 = time.perf_counter()
        try:
            self.module = _load_entry(code_dir, cfg["entry_script"])
            init = getattr(self.module, "init", None)
            if callable(init):
                init()
        except BaseException as exc:  # any failure in init() is reported
            traceback.print_exc()
            self.send(
                {
                    "ev": "init_failed",
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
            )
            return False
        print(f"init() finished in {time.perf_counter() - t0:.3f}s", flush=True)
        if cfg.get("append_row"):
            ready_writer()
        self.send({"ev": "ready", "pid": os.getpid(), "init_seconds": time.perf_counter() - t0})
        return True

    def loop(self) -> None:
        worker_log = Path(self.cfg["worker_log"])
        for line in iter(self.proto_in.readline, b""):
            task = json.loads(line)
            if task.get("stop"):
                break
            _redirect_std(Path(task["log"]))
            try:
                self.send(self.run_one(task))
            finally:
                _redirect_std(worker_log)
        shutdown = getattr(self.module, "shutdown", None)
        if callable(shutdown):
            shutdown()

    def run_one(self, task: dict[str, Any]) -> dict[str, Any]:
        mb, attempt = task["mb"], task["attempt"]
        items = task["items"]
        n_items = task["n_items"]
        print(
            f"--- mini-batch {mb} attempt {attempt} on worker {self.cfg['worker_id']} "
            f"(pid {os.getpid()}), {n_items} item(s): {task['label']}",
            flush=True,
        )
        t0 = time.perf_counter()
        base = {"ev": "done", "mb": mb, "attempt": attempt}
        try:
            mini_batch = _rows_frame(items) if task["kind"] == "rows" else list(items)
            result = self.module.run(mini_batch)
            t_run = time.perf_counter()
            rows = _count(result)
            if rows < n_items:
                raise RuntimeError(
                    f"run() returned {rows} row(s) for {n_items} item(s); each returned "
                    f"element marks one item as done, so the mini-batch is failed"
                )
            if task.get("out"):
                data = serialize_rows(result)
                tmp = task["out"] + ".partial"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, task["out"])
        except BaseException as exc:  # reported; the worker lives on
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            sys.stderr.flush()
            return {
                **base,
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0,
                "rss_mb": _rss_mb(),
            }
        seconds = time.perf_counter() - t0
        print(f"--- mini-batch {mb} done: {rows} row(s) in {seconds:.3f}s", flush=True)
        # run() (reading included) and append_row's part (serializing, writing): where a
        # mini-batch's time goes, summed in job_result.txt.
        return {
            **base,
            "ok": True,
            "rows": rows,
            "seconds": seconds,
            "run_seconds": t_run - t0,
            "write_seconds": time.perf_counter() - t_run,
            "rss_mb": _rss_mb(),
        }


def main() -> int:
    # Keep the protocol on private fds; fd 0 becomes /dev/null so a script reading stdin
    # gets EOF instead of swallowing tasks.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    worker = Worker(proto_in, proto_out)
    if not worker.start():
        return 1
    worker.loop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown (seconds with big libraries loaded): all is flushed


if __name__ == "__main__":
    raise SystemExit(main())
