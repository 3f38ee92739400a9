"""Azure ML environments, locally: curated specifications, resolution, content-hashed venvs,
per-step overlays and the tracking server for steps whose MLflow is not the project's."""

from pathlib import Path


def cache_root() -> Path:
    """`<user cache>/envs`, beside the validated-YAML cache (amlocal.loader.cache_dir): built
    venvs and the project-venv answers. Here, not in `build`, so the fast path (the project
    venv satisfies the step) does not import the builder (8 ms)."""
    from amlocal.loader import cache_dir

    return cache_dir() / "envs"
