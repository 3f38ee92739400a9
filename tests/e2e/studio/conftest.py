"""Browser tests of the studio: one headless Chromium (the system's, driven by Playwright) for
the whole session, and `amlocal studio` started as a real process on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("AMLOCAL_CHROMIUM", "/usr/bin/chromium")
# The flags this machine's headless Chromium needs (no sandbox as root, no background
# networking: the network is closed) - see .ci/run, which installs Debian's chromium.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does)"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()
    assert errors == [], f"JavaScript errors: {errors}"


class Studio:
    """`amlocal studio --port 0` on a workspace; `.url` once it said it is ready."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amlocal.cli", "studio", "--port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("amlocal studio: http://127.0.0.1:"), (
            line,
            self.proc.stderr.read() if self.proc.stderr else "",
        )
        self.url = line.split()[2].rstrip("/")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture()
def studio_for() -> Iterator[Any]:
    started: list[Studio] = []

    def start(env: dict[str, str], cwd: Path) -> Studio:
        s = Studio(env, cwd)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
