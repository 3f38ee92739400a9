"""Online endpoints: each one's deployments (model, state, instances), its traffic and mirror
split drawn as bars, and a Test tab that scores a JSON body through the endpoint's front door
with the endpoint's key (the one write the studio makes, and only to 127.0.0.1)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from amlocal import names
from amlocal.studio.html import esc, link, page, status, table
from amlocal.studio.readonly import Records

EP, DEP = "online-endpoint", "online-deployment"
MAX_BODY = 1 << 20  # a Test body or answer larger than 1 MiB is refused / cut
COLOURS = ("#2f6fdf", "#2aa876", "#e08a1e", "#9b59b6", "#d64545", "#16a2b8")


def _bar(split: dict[str, Any], cls: str, colours: dict[str, str]) -> str:
    parts = [(str(k), int(v)) for k, v in split.items() if int(v) > 0]
    if not parts:
        return f'<div class="bar {cls} empty">none</div>'
    segs = "".join(
        f'<div class="seg" data-deployment="{esc(k)}" data-percent="{v}" '
        f'style="width:{v}%;background:{colours.get(k, "#888")}">{esc(k)} {v}%</div>'
        for k, v in parts
    )
    return f'<div class="bar {cls}">{segs}</div>'


def list_page(records: Records) -> str:
    rows = [
        [
            link("endpoints", str(e["name"])),
            status(e.get("provisioning_state")),
            esc(", ".join(f"{k} {v}%" for k, v in (e.get("traffic") or {}).items())),
            esc(e.get("scoring_uri")),
        ]
        for e in records.list(EP)
    ]
    body = table(("Name", "State", "Traffic", "Scoring URI"), rows)
    return page("Endpoints", body, active="endpoints")


def endpoint_page(records: Records, ep: dict[str, Any]) -> str:
    name = str(ep["name"])
    deps = sorted(records.list(DEP, parent=name), key=lambda d: str(d.get("name")))
    colours = {str(d.get("name")): COLOURS[i % len(COLOURS)] for i, d in enumerate(deps)}
    traffic = ep.get("traffic") or {}
    mirror = ep.get("mirror_traffic") or {}
    rows = [
        [
            esc(d.get("name")),
            _model_link(d.get("model")),
            status(d.get("provisioning_state")),
            esc(d.get("instance_count", 1)),
            esc(f"{traffic.get(d.get('name'), 0)}%"),
            esc(f"{mirror.get(d.get('name'), 0)}%"),
        ]
        for d in deps
    ]
    overview = (
        f'<p class="meta">{status(ep.get("provisioning_state"))} <span>auth {esc(ep.get("auth_mode"))}</span> '
        f"<span>{esc(ep.get('scoring_uri'))}</span></p>"
        "<h2>Traffic</h2>"
        + _bar(traffic, "traffic", colours)
        + "<h2>Mirror traffic</h2>"
        + _bar(mirror, "mirror", colours)
        + "<h2>Deployments</h2>"
        + table(
            ("Deployment", "Model", "State", "Instances", "Traffic", "Mirror"), rows, "deployments"
        )
    )
    options = '<option value="">by traffic</option>' + "".join(
        f'<option value="{esc(d.get("name"))}">{esc(d.get("name"))}</option>' for d in deps
    )
    test = (
        '<form id="test-form" data-endpoint="' + esc(name) + '">'
        f'<label>Deployment <select id="test-deployment">{options}</select></label>'
        '<textarea id="test-body" rows="8" spellcheck="false">{"data": [[]]}</textarea>'
        '<button id="test-send" type="submit">Test</button></form>'
        '<pre id="test-answer" class="answer"></pre>'
    )
    tabs = (
        '<div class="tabs"><button class="tab active" data-tab="overview">Details</button>'
        '<button class="tab" data-tab="test">Test</button></div>'
        f'<section id="tab-overview" class="tabpane">{overview}</section>'
        f'<section id="tab-test" class="tabpane" hidden>{test}</section>'
    )
    return page(name, tabs, active="endpoints", scripts=("endpoint.js",))


def _model_link(model: Any) -> str:
    """`azureml:name:version` (or `name:version`) as a link to the model's page."""
    text = str(model or "")
    ref = text.removeprefix("azureml:").split("/")[-1]
    model_name = ref.split(":")[0].split("@")[0]
    try:
        names.resource(model_name)
    except Exception:
        return esc(text)
    return link("models", model_name, ref)


def score(home: Path, ep: dict[str, Any], body: bytes, deployment: str) -> tuple[int, str]:
    """POST `body` to the endpoint's own front door on 127.0.0.1 with its primary key;
    (status, answer text). The port comes from the endpoint record, never from the request."""
    port = ep.get("_port")
    if not isinstance(port, int) or not 0 < port < 65536:
        return 409, "this endpoint has no local port (is it created?)"
    try:
        keys_path = names.under(home, "endpoints", names.endpoint(str(ep["name"])), "keys.json")
        key = json.loads(keys_path.read_text())["primaryKey"]
    except (OSError, ValueError, KeyError) as exc:
        return 409, f"no key for this endpoint ({exc})"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    req = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (loopback only)
            return int(resp.status), resp.read(MAX_BODY).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(MAX_BODY).decode("utf-8", "replace")
    except OSError as exc:
        return 502, f"the endpoint did not answer: {exc}"
