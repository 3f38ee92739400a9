"""Azure ML environments, locally: curated specifications, resolution, content-hashed venvs,
per-step overlays and the tracking server for steps whose MLflow is not the project's."""
