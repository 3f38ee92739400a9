"""Schedules and monitors: a schedule's trigger, its next 5 firings (the scheduler's own
trigger code: croniter or rrule, in the trigger's time zone) and the jobs it fired; a
monitor's signals per feature and the plots its last run wrote."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from amlocal.studio.html import duration, esc, link, page, status, table, when
from amlocal.studio.readonly import Records

KIND = "schedule"
PROP_NAME = "azureml.scheduleName"  # set on every job a schedule fires (schedules/definition.py)


def is_monitor(record: dict[str, Any]) -> bool:
    return (record.get("_action") or {}).get("type") == "monitor"


def next_firings(record: dict[str, Any], count: int = 5) -> list[dt.datetime]:
    from amlocal.schedules.triggers import Trigger

    if not record.get("is_enabled", True):
        return []
    created = dt.datetime.fromisoformat(str(record.get("_created")))
    trigger = Trigger(record["trigger"], created)
    out: list[dt.datetime] = []
    t: dt.datetime | None = dt.datetime.now(dt.UTC)
    while t is not None and len(out) < count:
        t = trigger.next_after(t)
        if t is not None:
            out.append(t)
    return out


def fired_jobs(records: Records, name: str) -> list[dict[str, Any]]:
    return [
        j
        for j in records.list("job", top=True)
        if (j.get("properties") or {}).get(PROP_NAME) == name
    ]


def list_page(records: Records, monitors: bool) -> str:
    kind = "monitors" if monitors else "schedules"
    rows = [
        [
            link(kind, str(s["name"])),
            esc("enabled" if s.get("is_enabled", True) else "disabled"),
            esc((s.get("trigger") or {}).get("type")),
        ]
        for s in records.list(KIND)
        if is_monitor(s) == monitors
    ]
    return page(kind.capitalize(), table(("Name", "State", "Trigger"), rows), active=kind)


def _runs_table(jobs: list[dict[str, Any]]) -> str:
    rows = [
        [
            link("jobs", str(j["name"])),
            status(j.get("status")),
            esc(
                when(
                    (j.get("properties") or {}).get("azureml.scheduleFireTime")
                    or j.get("start_time")
                )
            ),
            esc(duration(j)),
        ]
        for j in jobs[:20]
    ]
    return table(("Job", "Status", "Fired", "Duration"), rows, "runs")


def schedule_page(records: Records, record: dict[str, Any]) -> str:
    name = str(record["name"])
    trigger = record.get("trigger") or {}
    what = trigger.get("expression") or json.dumps(
        {k: v for k, v in trigger.items() if k != "type"}
    )
    firings = "".join(
        f'<li class="firing">{esc(when(t.isoformat()))}</li>' for t in next_firings(record)
    )
    body = (
        f'<p class="meta"><span>{esc("enabled" if record.get("is_enabled", True) else "disabled")}</span> '
        f"<span>{esc(trigger.get('type'))}: {esc(what)}</span> <span>time zone {esc(trigger.get('time_zone') or 'UTC')}</span></p>"
        f'<h2>Next firings</h2><ol id="next-firings">{firings or "<li>none</li>"}</ol>'
        "<h2>Last runs</h2>" + _runs_table(fired_jobs(records, name))
    )
    if is_monitor(record):
        body += f"<p>{link('monitors', name, 'Signals and plots')}</p>"
    return page(name, body, active="schedules")


def signals_dir(home: Path, job: dict[str, Any]) -> Path | None:
    """The `signals` output folder of a monitor job, if it lies inside the workspace."""
    out = ((job.get("outputs") or {}).get("signals") or {}).get("local_path")
    if not out:
        return None
    path = Path(str(out)).resolve()
    return path if path.is_relative_to(home.resolve()) and path.is_dir() else None


def monitor_page(home: Path, records: Records, record: dict[str, Any]) -> str:
    name = str(record["name"])
    jobs = fired_jobs(records, name)
    body = f"<p>{link('schedules', name, 'Schedule, next firings')}</p>"
    done = [j for j in jobs if (d := signals_dir(home, j)) and (d / "signals.json").is_file()]
    if not done:
        return page(
            name,
            body + "<p>No monitor run has reported signals yet.</p>" + _runs_table(jobs),
            active="monitors",
        )
    job = done[0]
    folder = signals_dir(home, job)
    assert folder is not None
    report = json.loads((folder / "signals.json").read_text())
    body += f"<p>Latest run {link('jobs', str(job['name']))}: {'passed' if report.get('passed') else 'breached'}</p>"
    for signal, sig in (report.get("signals") or {}).items():
        rows = [
            [
                esc(m.get("feature")),
                esc(m.get("metric")),
                esc(
                    f"{m.get('value'):.4g}" if isinstance(m.get("value"), float) else m.get("value")
                ),
                esc(m.get("threshold")),
                status("Completed" if m.get("passed") else "Failed"),
            ]
            for m in sig.get("metrics") or []
        ]
        body += f"<h2>{esc(signal)} <small>{esc(sig.get('type'))}</small></h2>"
        body += table(("Feature", "Metric", "Value", "Threshold", "Passed"), rows, "signals")
    plots = sorted(p.name for p in folder.glob("*.png"))
    body += "<h2>Plots</h2>" + "".join(
        f'<figure><img src="/monitors/{esc(name)}/plots/{esc(job["name"])}/{esc(p)}" alt="{esc(p)}"><figcaption>{esc(p)}</figcaption></figure>'
        for p in plots
    )
    body += "<h2>Runs</h2>" + _runs_table(jobs)
    return page(name, body, active="monitors")
