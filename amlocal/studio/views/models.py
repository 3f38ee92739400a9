"""Models: each registered model's versions, tags, aliases (the champion among them) and
lineage: the job (and its data inputs) that registered a version, the deployments serving it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from amlocal.studio.html import esc, link, page, table
from amlocal.studio.readonly import Mlflow, Records


def list_page(mlflow: Mlflow) -> str:
    rows = [[link("models", n)] for n in mlflow.models()]
    return page("Models", table(("Name",), rows), active="models")


def _jobs_by_run(records: Records) -> dict[str, dict[str, Any]]:
    return {
        str((j.get("properties") or {}).get("mlflow.runId")): j
        for j in records.list("job")
        if (j.get("properties") or {}).get("mlflow.runId")
    }


def _serving(records: Records, name: str) -> dict[str, list[str]]:
    """version -> the `endpoint/deployment`s whose model is that version of `name`."""
    out: dict[str, list[str]] = {}
    for d in records.list("online-deployment") + records.list("batch-deployment"):
        ref = str(d.get("model") or "").removeprefix("azureml:").split("/")[-1]
        model, _, version = ref.partition(":")
        if model == name and version:
            out.setdefault(version, []).append(f"{d.get('endpoint_name')}/{d.get('name')}")
    return out


def _data_inputs(job: dict[str, Any], records: Records) -> list[str]:
    """The data the job read: its inputs with a path, or its pipeline's."""
    parent = (
        records.get("job", str(job.get("parent_job_name"))) if job.get("parent_job_name") else None
    )
    found = []
    for source in (job, parent or {}):
        for key, value in (source.get("inputs") or {}).items():
            if isinstance(value, dict) and value.get("path"):
                found.append(f"{key}: {value['path']}")
    return found


def model_page(records: Records, mlflow: Mlflow, name: str) -> str | None:
    versions = mlflow.model_versions(name)
    if not versions and name not in mlflow.models():
        return None
    azure = {v["number"]: v["version"] for v in versions}  # MLflow's number -> Azure's
    aliases = {a: azure.get(n, n) for a, n in mlflow.aliases(name).items()}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    jobs = _jobs_by_run(records)
    serving = _serving(records, name)
    rows = []
    for v in versions:
        job = jobs.get(str(v["run_id"]))
        made_by = ""
        if job:
            made_by = link("jobs", str(job["name"]), job.get("display_name") or job["name"])
            if job.get("parent_job_name"):
                made_by += " in " + link("jobs", str(job["parent_job_name"]))
            made_by += "".join(
                f"<div class=small>{esc(d)}</div>" for d in _data_inputs(job, records)
            )
        created = dt.datetime.fromtimestamp((v["created"] or 0) / 1000, dt.UTC).strftime(
            "%Y-%m-%d %H:%M"
        )
        rows.append(
            [
                esc(v["version"]),
                " ".join(
                    f'<span class="alias">@{esc(a)}</span>'
                    for a in sorted(by_version.get(v["version"], []))
                ),
                esc(created),
                esc(", ".join(f"{k}={val}" for k, val in sorted(v["tags"].items()))),
                made_by,
                " ".join(
                    link("endpoints", e.split("/")[0], e) for e in serving.get(v["version"], [])
                ),
            ]
        )
    champion = aliases.get("champion")
    head = f'<p class="meta">champion: <b id="champion">{esc("v" + champion if champion else "none")}</b> '
    head += f"<span>{esc(', '.join(f'{k}={v}' for k, v in sorted(mlflow.model_tags(name).items())))}</span></p>"
    headers = ("Version", "Aliases", "Created", "Tags", "Made by (job, data)", "Serving")
    return page(name, head + table(headers, rows, "versions"), active="models")
