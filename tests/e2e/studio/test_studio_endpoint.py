"""The endpoint page in a real browser: the repository's diabetes endpoint (blue live, green
mirrored), its traffic and mirror split drawn, and the Test tab scoring through the front door
with the endpoint's key and showing the model's answer."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from online_support import ENDPOINT_DIR, cli, diabetes_workspace, kill_leftovers, workspace_env

ROW = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]


def test_endpoint_traffic_split_and_test_tab(tmp_path: Path, page: Any, studio_for: Any) -> None:
    home = tmp_path / "ws"
    with workspace_env(home) as ws:
        model, X = diabetes_workspace(ws)
        try:
            cli("online-endpoint", "create", "-f", str(ENDPOINT_DIR / "endpoint.yml"))
            cli(
                "online-deployment", "create", "-f", str(ENDPOINT_DIR / "blue.yml"), "--all-traffic"
            )
            cli("online-deployment", "create", "-f", str(ENDPOINT_DIR / "green.yml"))
            cli("online-endpoint", "update", "-n", "diabetes", "--mirror-traffic", "green=10")
            studio = studio_for(dict(os.environ), tmp_path)
            page.goto(f"{studio.url}/endpoints/diabetes")
            live = page.locator(".bar.traffic .seg")
            assert live.count() == 1 and live.get_attribute("data-deployment") == "blue"
            assert live.get_attribute("data-percent") == "100" and "blue 100%" in live.inner_text()
            mirror = page.locator(".bar.mirror .seg")
            assert (
                mirror.get_attribute("data-deployment") == "green"
                and "green 10%" in mirror.inner_text()
            )
            deployments = page.locator("table.deployments tbody tr").all_inner_texts()
            assert any(r.startswith("blue") and "diabetes-model:1" in r for r in deployments)
            assert any(r.startswith("green") for r in deployments)

            page.click("button.tab[data-tab=test]")
            page.fill("#test-body", json.dumps({"data": [ROW]}))
            page.click("#test-send")
            page.wait_for_selector("#test-answer[data-status]", timeout=60_000)
            assert page.get_attribute("#test-answer", "data-status") == "200", page.inner_text(
                "#test-answer"
            )
            answer = page.inner_text("#test-answer")
            import pandas as pd

            expected = float(model.predict(pd.DataFrame([ROW], columns=X.columns))[0])
            numbers = [float(n) for n in re.findall(r"-?\d+\.\d+", answer)]
            assert any(abs(n - expected) < 1e-6 * max(1.0, abs(expected)) for n in numbers), answer
            # Without the studio's header (a cross-site form), no scoring happens.
            status = page.evaluate(
                "fetch('/api/endpoints/diabetes/test', {method: 'POST', body: '{}'}).then(r => r.status)"
            )
            assert status == 400
        finally:
            cli("online-endpoint", "delete", "-n", "diabetes", "--yes", ok=False)
            leftovers = kill_leftovers(home)
    assert leftovers == []
