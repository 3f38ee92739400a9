"""Jobs: the list (type, status, display name, experiment, start, duration; filters) and a
job's page, whose graph (views/graph.py) the browser draws and polls."""

from __future__ import annotations

from typing import Any

from amlocal.studio.html import duration, esc, link, page, status, table, when
from amlocal.studio.readonly import Records

FILTERS = ("status", "type", "experiment", "q")


def _matches(job: dict[str, Any], want: dict[str, str]) -> bool:
    if want.get("status") and job.get("status") != want["status"]:
        return False
    if want.get("type") and job.get("type") != want["type"]:
        return False
    if want.get("experiment") and job.get("experiment_name") != want["experiment"]:
        return False
    q = want.get("q", "").lower()
    return not q or q in f"{job.get('name', '')} {job.get('display_name', '')}".lower()


def _select(name: str, values: set[str], chosen: str) -> str:
    opts = "".join(
        f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>'
        for v in sorted(values)
    )
    return (
        f'<label>{name} <select name="{name}"><option value="">all</option>{opts}</select></label>'
    )


def list_page(records: Records, query: dict[str, str]) -> str:
    jobs = records.list("job", top=True)
    want = {k: query.get(k, "") for k in FILTERS}
    shown = [j for j in jobs if _matches(j, want)]
    form = (
        '<form class="filters" method="get">'
        + _select("status", {str(j.get("status")) for j in jobs}, want["status"])
        + _select("type", {str(j.get("type")) for j in jobs}, want["type"])
        + _select("experiment", {str(j.get("experiment_name")) for j in jobs}, want["experiment"])
        + f'<label>name <input name="q" value="{esc(want["q"])}"></label>'
        + "<button>Filter</button></form>"
    )
    rows = [
        [
            esc(j.get("type")),
            status(j.get("status")),
            link("jobs", str(j.get("name")), j.get("display_name") or j.get("name")),
            esc(j.get("experiment_name")),
            esc(when(j.get("start_time") or (j.get("creation_context") or {}).get("created_at"))),
            esc(duration(j)),
        ]
        for j in shown
    ]
    headers = ("Type", "Status", "Display name", "Experiment", "Start", "Duration")
    body = form + f'<p class="count">{len(shown)} of {len(jobs)} jobs</p>'
    return page("Jobs", body + table(headers, rows, "jobs"), active="jobs")


def job_page(job: dict[str, Any]) -> str:
    name = str(job["name"])
    head = (
        f'<p class="meta">{status(job.get("status"))} <span>{esc(job.get("type"))}</span> '
        f"<span>experiment {esc(job.get('experiment_name'))}</span> "
        f'<span id="job-duration">{esc(duration(job))}</span></p>'
    )
    parent = job.get("parent_job_name")
    if parent:
        head += f"<p>step of {link('jobs', str(parent))}</p>"
    body = (
        head
        + f'<div class="graph-wrap"><svg id="graph" data-job="{esc(name)}"></svg></div>'
        + '<aside id="detail" class="detail"><p>Click a step for its inputs, outputs, log and metrics.</p></aside>'
    )
    title = str(job.get("display_name") or name)
    return page(title, body, active="jobs", scripts=("dagre.min.js", "graph.js"))
