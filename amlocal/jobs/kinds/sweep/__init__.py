"""A `type: sweep` step: `step` runs the trials (processes, MLflow polling, early
termination, the best trial's outputs as the sweep's), `decisions` is what Azure ML decides
(sampling, policies, the best trial; no I/O) and `plot` the comparison figure of the trials."""
