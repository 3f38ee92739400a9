"""The MLflow run lifecycle of one job: the pipeline's own run (created with its first step
that really executes: a fully reused pipeline creates none), each step's run nested under it
(a sweep's trials under the sweep's), named as studio shows them (`amlocal.run_names`), the
variables a step process needs to log to it, and the end of every run with the job's status.

MLflow's SQLite store is written by one thread at a time: every call here holds `lock`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from amlocal import run_names, tracking

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from amlocal.workspace import Workspace


class MlflowRuns:
    """The runs of one job (`job`), in experiment `experiment`."""

    def __init__(
        self,
        ws: Workspace,
        experiment: str,
        job: str,
        *,
        pipeline: bool,
        git_commit: str | None,
        job_tags: dict[str, str],
        on_pipeline_run: Callable[[str], None],
    ) -> None:
        self.ws, self.experiment, self.job = ws, experiment, job
        self.pipeline = pipeline
        self.git_commit = git_commit
        self.job_tags = job_tags  # the job's YAML tags and description, on its own run
        self.on_pipeline_run = on_pipeline_run  # records the pipeline run's id on the job
        self.lock = threading.Lock()
        self.pipeline_run: str | None = None

    def tags(self, job: str, **extra: str) -> dict[str, str]:
        tags = {"azureml.jobName": job, **extra}
        if self.git_commit:
            tags["mlflow.source.git.commit"] = self.git_commit
        if job == self.job:
            tags |= self.job_tags
        return tags

    def start(self, job: str, parent_run_id: str | None = None) -> str:
        """Create the run of a job that really executes (never for a reused one): nested
        under the pipeline's run, or under `parent_run_id` (a sweep's trials); its id."""
        with self.lock:
            parent = parent_run_id
            if parent is None and self.pipeline:
                if self.pipeline_run is None:
                    self.pipeline_run = tracking.start_run(
                        self.ws,
                        self.experiment,
                        run_names.for_job(self.ws, self.job),
                        tags=self.tags(self.job, **{"azureml.runType": "pipeline"}),
                    )
                    self.on_pipeline_run(self.pipeline_run)
                    self._log_inputs(self.pipeline_run)
                parent = self.pipeline_run
            return tracking.start_run(
                self.ws,
                self.experiment,
                run_names.for_job(self.ws, job),
                parent_run_id=parent,
                tags=self.tags(job),
            )

    def end(self, run_id: str, status: str, outputs_dir: Path | None = None) -> None:
        """End a run with the job's status, after logging `./outputs` as Azure ML does."""
        with self.lock:
            if outputs_dir is not None and outputs_dir.is_dir() and any(outputs_dir.iterdir()):
                tracking.log_outputs_dir(self.ws, run_id, str(outputs_dir))
            tracking.end_run(self.ws, run_id, status)

    def finish(self, status: str) -> None:
        """End the pipeline's own run, if a step created it, with its steps' final metrics
        (`<step>.<metric>`, reused steps' included) so pipelines compare in MLflow."""
        if self.pipeline_run:
            metrics: dict[str, float] = {}
            for child in self.ws.store.list("job", parent=self.job):
                run_id = (child.get("properties") or {}).get("mlflow.runId")
                if run_id:
                    for key, value in tracking.run_metrics(self.ws, str(run_id)).items():
                        metrics[f"{child.get('step_name')}.{key}"] = value
            with self.lock:
                tracking.log_summary(self.ws, self.pipeline_run, {}, metrics)
            self.end(self.pipeline_run, status)

    def _log_inputs(self, run_id: str) -> None:
        """The pipeline's literal inputs (and input data paths) as the run's params."""
        record = self.ws.store.get("job", self.job) or {}
        params = {}
        for key, value in (record.get("inputs") or {}).items():
            value = value.get("path") if isinstance(value, dict) else value
            if value is not None:
                params[str(key)] = str(value)
        tracking.log_summary(self.ws, run_id, params, {})

    def env(self, job: str, run_id: str | None) -> dict[str, str]:
        """The variables Azure ML sets for a job process (MLflow run, job name)."""
        env = {
            "MLFLOW_TRACKING_URI": self.ws.mlflow_tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": self.experiment,
            "AMLOCAL": "1",
            "AMLOCAL_HOME": str(self.ws.home),
            "AZUREML_RUN_ID": job,
        }
        if run_id:
            env["MLFLOW_RUN_ID"] = run_id
            with self.lock:
                env["MLFLOW_EXPERIMENT_ID"] = tracking.experiment_id(self.ws, self.experiment)
        return env

    @contextmanager
    def client(self) -> Iterator[MlflowClient]:
        """An MlflowClient, holding the lock (a sweep reads metrics and logs plots)."""
        with self.lock:
            yield tracking.client(self.ws)
