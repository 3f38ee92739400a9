"""A pipeline's graph as JSON for the browser: one node per step, from the plan in the job
record (nested pipelines as groups, from their component's `jobs`), each with its step job's
live status, reuse mark and duration; edges from `${{parent.jobs.X.outputs...}}` bindings.
A job that is not a pipeline is a graph of one node."""

from __future__ import annotations

import json
import re
from typing import Any

from amlocal.studio.html import TERMINAL, duration
from amlocal.studio.readonly import Records

_UPSTREAM = re.compile(r"\$\{\{\s*parent\.jobs\.([A-Za-z0-9_.-]+?)\.outputs\b")


def _upstream(step: dict[str, Any]) -> set[str]:
    """The sibling steps a step reads outputs of (its bindings, as written or as planned)."""
    found = set(_UPSTREAM.findall(json.dumps(step.get("inputs") or {})))
    for binding in (step.get("inputs") or {}).values():
        if isinstance(binding, dict) and isinstance(binding.get("step_output"), list):
            found.add(str(binding["step_output"][0]))
    return found


def _node(
    record: dict[str, Any] | None, node_id: str, label: str, parent: str | None, kind: str
) -> dict[str, Any]:
    rec = record or {}
    props = rec.get("properties") or {}
    reused = props.get("azureml.isreused") == "true"
    return {
        "id": node_id,
        "label": label,
        "parent": parent,
        "type": rec.get("type") or kind,
        "status": rec.get("status") or "NotStarted",
        "reused": reused,
        "reused_from": props.get("azureml.reusedrunid") if reused else None,
        "duration": "" if reused else duration(rec),
        "job": rec.get("name"),
    }


def _steps(
    records: Records,
    job_name: str | None,
    steps: dict[str, dict[str, Any]],
    prefix: str,
    parent: str | None,
    nodes: list[dict[str, Any]],
    edges: list[list[str]],
) -> None:
    """Add `steps` (name -> step spec or plan entry) under group `parent`, recursively."""
    children = {
        str(c.get("step_name")): c
        for c in (records.list("job", parent=job_name) if job_name else [])
    }
    for step, spec in steps.items():
        node_id = f"{prefix}{step}"
        child = children.get(step)
        component = (spec.get("spec") or spec).get("component")
        kind = str(spec.get("kind") or spec.get("type") or "command")
        nodes.append(_node(child, node_id, str(spec.get("display_name") or step), parent, kind))
        for up in _upstream(spec.get("spec") or spec) | _upstream(spec):
            if up in steps:
                edges.append([f"{prefix}{up}", node_id])
        inner = component.get("jobs") if isinstance(component, dict) else None
        if isinstance(inner, dict) and inner:
            nodes[-1]["group"] = True
            _steps(
                records,
                child.get("name") if child else None,
                inner,
                f"{node_id}/",
                node_id,
                nodes,
                edges,
            )
        elif child and child.get("type") == "pipeline":  # a registered pipeline component
            sub = {
                str(c.get("step_name")): {"type": c.get("type")}
                for c in records.list("job", parent=str(child["name"]))
            }
            if sub:
                nodes[-1]["group"] = True
                _steps(records, str(child["name"]), sub, f"{node_id}/", node_id, nodes, edges)


def graph(records: Records, job: dict[str, Any]) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    plan = job.get("_plan") or {}
    if job.get("type") == "pipeline":
        steps = plan.get("steps") or (plan.get("spec") or {}).get("jobs") or {}
        if not steps:  # no plan kept: the step jobs as recorded
            steps = {
                str(c.get("step_name")): {"type": c.get("type")}
                for c in records.list("job", parent=str(job["name"]))
            }
        _steps(records, str(job["name"]), steps, "", None, nodes, edges)
    else:
        nodes.append(
            _node(
                job, str(job["name"]), str(job.get("display_name") or job["name"]), None, "command"
            )
        )
    return {
        "name": job["name"],
        "status": job.get("status"),
        "duration": duration(job),
        "live": job.get("status") not in TERMINAL,
        "nodes": nodes,
        "edges": edges,
    }
