"""The job engine: plan, reuse, run, schedule and stream Azure ML jobs locally."""
