"""A venv whose build fails leaves nothing in the cache but its lock file: before, uv's seed
(pip and setuptools, ~700 files, no amlocal-env.json) stayed there until the environment was
asked for again. The failure is a wheel that does not exist, so uv fails offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlocal.environments import build, cache_root
from amlocal.environments.spec import Spec
from amlocal.errors import AmlocalError

# It runs uv: not in the in-process tier.
pytestmark = pytest.mark.subprocess


def test_a_failed_build_leaves_no_half_made_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLOCAL_CACHE_DIR", str(tmp_path / "cache"))
    missing = tmp_path / "amlocal_missing-1.0-py3-none-any.whl"
    spec = Spec(requirements=(f"amlocal-missing @ {missing.as_uri()}",))
    with pytest.raises(AmlocalError, match="building its venv failed"):
        build.ensure(spec, "broken")
    left = sorted(p.name for p in cache_root().iterdir())
    assert [n for n in left if not n.endswith(".lock")] == [], left  # before: the venv folder
