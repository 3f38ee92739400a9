"""Issue 31, item 1: a generated project tells the truth. For each task type, `make
new-project` renders a project whose README names only make targets that have a recipe there
(none is a bare `.PHONY`, none is `new-project`), names its task's estimator, and holds no
file that was untracked in the template (a user's CSV beside the Makefile). The targets it
names then run: the cheap ones to the end; `make test` collects the whole suite
(PYTEST_ADDOPTS=--collect-only); `make ui` serves until it answers; in the classification
project `train`, `invoke`, `batch`, `stop` and `clean` run fully, in the regression one the
training-dependent targets (`train`, `invoke`, `batch`, `monitor`) only as `make -n`.

The projects reuse this venv (a `.venv` symlink; `make -o .venv/.installed` skips setup),
with PYTHONPATH on their own copy of the engine, as test_new_project.py does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.e2e.project.test_new_project import churn_csv

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(sys.prefix)
MAKE_TARGET = re.compile(r"(?:^|`)make (?:-s )?([a-z][a-z-]*)", re.MULTILINE)


def make(cwd: Path, *args: str, env: dict[str, str], timeout: int = 1200):
    return subprocess.run(
        ["make", "-o", ".venv/.installed", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def named_targets(readme: str) -> set[str]:
    return set(MAKE_TARGET.findall(readme))


def new_project(template: Path, tmp: Path, *args: str) -> tuple[Path, dict[str, str]]:
    dest = tmp / "project"
    done = make(template, "new-project", f"DEST={dest}", *args,
                env={**os.environ, "PYTHONPATH": str(template)})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (dest / ".venv").symlink_to(VENV)
    env = {**os.environ, "PYTHONPATH": str(dest)}
    for var in ("AMLOCAL_HOME", "MLFLOW_TRACKING_URI", "MAKEFLAGS", "MFLAGS"):
        env.pop(var, None)
    return dest, env


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout's tracked files as they are in the working tree, in a git
    repository of its own. The untracked files below go there, never into the checkout: other
    tests run pipelines/train.yml from the checkout at the same time, and a file in src/train
    changes train's code snapshot, so their reruns stopped being reused (a flaky
    test_champion_not_replayed)."""
    copy = tmp_path_factory.mktemp("template")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is not copied
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "template"]):
        subprocess.run([*git, *args], cwd=copy, check=True, capture_output=True)
    (copy / ".venv").symlink_to(VENV)  # a link, which `.venv/` in .gitignore does not match
    (copy / ".git" / "info" / "exclude").write_text(".venv\n")
    return copy


@pytest.fixture(scope="module")
def untracked(template: Path) -> dict[str, Path]:
    """Files a user leaves in the template's working tree, untracked (as `churn.csv` in the
    README's own example): none may reach a new project."""
    tag = uuid.uuid4().hex[:8]
    files = {
        "csv": template / f"churn-{tag}.csv",
        "notes": template / "src" / "train" / f"notes-{tag}.txt",
    }
    churn_csv(files["csv"], rows=200)
    files["notes"].write_text("scratch\n")
    return files


@pytest.fixture(scope="module")
def classification(
    tmp_path_factory: pytest.TempPathFactory, template: Path, untracked: dict[str, Path]
):
    dest, env = new_project(
        template, tmp_path_factory.mktemp("cls"), "NAME=churn", "TASK=classification",
        f"DATA={untracked['csv']}", "TARGET=churned",
    )  # fmt: skip
    yield dest, env
    make(dest, "stop", env=env, timeout=300)


@pytest.fixture(scope="module")
def regression(
    tmp_path_factory: pytest.TempPathFactory, template: Path, untracked: dict[str, Path]
):
    dest, env = new_project(template, tmp_path_factory.mktemp("reg"), "NAME=risk")
    yield dest, env
    make(dest, "stop", env=env, timeout=300)


def _nothing_untracked(dest: Path, template: Path, untracked: dict[str, Path]) -> None:
    for f in untracked.values():
        assert not (dest / f.relative_to(template)).exists(), f
        assert not list(dest.rglob(f.name)), f
    tracked = subprocess.run(
        ["git", "ls-files", "-o", "--exclude-standard"], cwd=template, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    leaked = [p for p in tracked if (dest / p).exists() and "diabetes" not in p]
    assert not leaked, leaked


def _every_named_target_has_a_recipe(dest: Path, env: dict[str, str]) -> set[str]:
    targets = named_targets((dest / "README.md").read_text())
    assert {"train", "test", "invoke", "validate", "ui", "stop", "clean"} <= targets
    assert "new-project" not in targets  # no newproject/ in a generated project
    for target in sorted(targets):
        dry = make(dest, "-n", target, env=env, timeout=120)
        assert dry.returncode == 0, (target, dry.stderr)
        assert "Nothing to be done" not in dry.stdout + dry.stderr, target
        assert dry.stdout.strip(), f"make {target}: no recipe"
    return targets


def _ui_answers(dest: Path, env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["make", "-o", ".venv/.installed", "ui", f"UI_PORT={port}"], cwd=dest, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    assert r.status == 200
                    return
            except OSError:
                assert proc.poll() is None, "make ui exited"
                assert time.monotonic() < deadline, "make ui never answered"
                time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _collects(dest: Path, env: dict[str, str]) -> None:
    done = make(dest, "test", env={**env, "PYTEST_ADDOPTS": "--collect-only"}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ tests collected", done.stdout), done.stdout[-500:]


def test_classification_project_readme_is_true(
    classification: tuple[Path, dict[str, str]], template: Path, untracked: dict[str, Path]
) -> None:
    dest, env = classification
    _nothing_untracked(dest, template, untracked)
    readme = (dest / "README.md").read_text()
    assert "**train** (LogisticRegression," in readme and "Ridge" not in readme
    targets = _every_named_target_has_a_recipe(dest, env)
    assert "monitor" not in targets and not (dest / "schedules" / "monitor-churn.yml").exists()
    assert "monitor-churn" not in (dest / ".github" / "workflows" / "train-deploy.yml").read_text()
    assert "train-digits" not in targets
    for target in ("validate", "train", "invoke", "batch"):
        done = make(dest, target, env=env)
        assert done.returncode == 0, (target, done.stdout[-3000:], done.stderr[-3000:])
    assert list((dest / "batch-output").rglob("predictions.csv"))  # make batch: in the project
    _collects(dest, env)
    _ui_answers(dest, env)
    status = subprocess.run(
        [str(VENV / "bin" / "amlocal"), "workspace", "status"], cwd=dest, env=env,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert '"online-endpoint"' in status
    for target in ("stop", "clean"):
        done = make(dest, target, env=env, timeout=300)
        assert done.returncode == 0, (target, done.stderr)
    assert not (dest / ".amlocal").exists()


def test_regression_project_readme_is_true(
    regression: tuple[Path, dict[str, str]], template: Path, untracked: dict[str, Path]
) -> None:
    dest, env = regression
    _nothing_untracked(dest, template, untracked)
    readme = (dest / "README.md").read_text()
    assert "**train** (Ridge," in readme and "LogisticRegression" not in readme
    targets = _every_named_target_has_a_recipe(dest, env)
    assert "monitor" in targets and (dest / "schedules" / "monitor-risk.yml").is_file()
    done = make(dest, "validate", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _collects(dest, env)
    for target in ("stop", "clean"):
        done = make(dest, target, env=env, timeout=300)
        assert done.returncode == 0, (target, done.stderr)
