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

Why the names below load on first use (PEP 562 `__getattr__`), not at import: every worker
process starts as `python -m amlocal.jobs.kinds.parallel.worker`, which imports this package
first. Importing the executor here would put it and its modules into each worker's start
(and `max_concurrency_per_instance` workers start per instance); lazily, a worker pays only
for what `worker.py` itself imports. The worker lives beside the code that starts it because
of that; keep this file free of imports that run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlocal.jobs.kinds.parallel.executor import execute
    from amlocal.jobs.kinds.parallel.minibatch import (
        TABULAR_SUFFIXES,
        MiniBatch,
        list_files,
        mltable_files,
        parse_mini_batch_size,
        plan,
        split_rows,
    )
    from amlocal.jobs.kinds.parallel.pool import worker_env
    from amlocal.jobs.kinds.parallel.results import Progress, Summary
    from amlocal.jobs.kinds.parallel.settings import (
        BATCH_DEPLOYMENT_DEFAULTS,
        PARALLEL_JOB_DEFAULTS,
        ParallelSpec,
    )

_HOME = {
    "BATCH_DEPLOYMENT_DEFAULTS": "settings",
    "PARALLEL_JOB_DEFAULTS": "settings",
    "TABULAR_SUFFIXES": "minibatch",
    "MiniBatch": "minibatch",
    "ParallelSpec": "settings",
    "Progress": "results",
    "Summary": "results",
    "execute": "executor",
    "list_files": "minibatch",
    "mltable_files": "minibatch",
    "parse_mini_batch_size": "minibatch",
    "plan": "minibatch",
    "split_rows": "minibatch",
    "worker_env": "pool",
}
__all__ = [
    "BATCH_DEPLOYMENT_DEFAULTS",
    "PARALLEL_JOB_DEFAULTS",
    "TABULAR_SUFFIXES",
    "MiniBatch",
    "ParallelSpec",
    "Progress",
    "Summary",
    "execute",
    "list_files",
    "mltable_files",
    "parse_mini_batch_size",
    "plan",
    "split_rows",
    "worker_env",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
