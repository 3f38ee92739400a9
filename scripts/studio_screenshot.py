"""A screenshot of a pipeline's graph in the studio (the README's picture), from a real run.

    .venv/bin/python scripts/studio_screenshot.py [--job NAME] [--step STEP] [--out docs/studio-pipeline.png]

Starts `amlocal studio` on a free port for the current workspace (AMLOCAL_HOME or .amlocal/),
opens the job's page (default: the newest pipeline job) in the system's headless Chromium
(Playwright, as the browser tests), expands nested pipelines, clicks a step (default: the
first failed one, else the last) and saves the page as a PNG. The studio is stopped after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e" / "studio"))


def main() -> int:
    from conftest import CHROMIUM, CHROMIUM_ARGS  # the browser tests' launch settings
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--job")
    ap.add_argument("--step")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "studio-pipeline.png")
    ap.add_argument("--width", type=int, default=1200)
    args = ap.parse_args()
    cli = [sys.executable, "-m", "amlocal.cli"]
    job = args.job
    if not job:
        jobs = json.loads(
            subprocess.run([*cli, "job", "list"], capture_output=True, text=True, check=True).stdout
        )
        pipelines = [j for j in jobs if j.get("type") == "pipeline"]
        if not pipelines:
            sys.exit("no pipeline job in this workspace: run one first (make train)")
        job = max(pipelines, key=lambda j: j["creation_context"]["created_at"])["name"]
    proc = subprocess.Popen(
        [*cli, "studio", "--port", "0"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[2].rstrip("/")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(
                viewport={"width": args.width, "height": 700}, device_scale_factor=1
            )
            page.goto(f"{url}/jobs/{job}")
            page.wait_for_selector("svg#graph g.node")
            while groups := page.locator("g.node").filter(has_text="+ ").all():
                groups[0].click()
            step = args.step
            if not step:
                failed = page.locator("g.node[data-status=Failed]").all()
                step = (failed or page.locator("g.node").all())[-1].get_attribute("data-id")
            page.click(f"g.node[data-id='{step}']")
            page.wait_for_selector("#detail-log")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    print(f"{args.out} ({job}, step {step})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
