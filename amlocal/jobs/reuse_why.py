"""Why a step ran again instead of being reused.

The reuse key (amlocal.jobs.reuse.fingerprint) is one digest of the step's component spec,
code snapshot, environment, inputs, output settings and run settings. Beside it, each run
that could be reused keeps those parts one by one (per spec key, per code file, per input),
indexed by component. When a step misses, its parts are compared with the nearest earlier run
of the same component (the one with the fewest differences) and the differences are written
to the step's record (`rerun`) and shown by `--stream`: which code file, input, environment
or setting changed. Azure ML does not say (azure-docs#76159 asks for exactly this).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.hashing import file_digest, text_digest

if TYPE_CHECKING:
    from amlocal.store import Store

HISTORY = 20  # earlier runs kept per component
_pending: dict[str, dict[str, Any]] = {}  # fingerprint -> its parts, in the runner process


def note(
    key: str,
    component: dict[str, Any],
    code: Path | None,
    includes: list[str],
    environment: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    run_settings: dict[str, Any],
) -> None:
    """Keep the parts of fingerprint `key`, as given: they are digested and the code files
    hashed only when needed (a miss to explain, or a run to remember), never for a step that
    is reused, which is every step of a rerun."""
    from amlocal.jobs.reuse import _SPEC_KEYS

    _pending[key] = {
        "_spec": {k: component.get(k) for k in _SPEC_KEYS if component.get(k) is not None},
        "_code": (str(code) if code else None, list(includes)),
        "environment": environment,
        "_inputs": dict(inputs),
        "_outputs": dict(outputs),
        "_run": dict(run_settings),
    }


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else "sha256:" + text_digest(text)[:16]


def _resolved(parts: dict[str, Any], store: Store) -> dict[str, Any]:
    """The parts in the form they are compared and kept in: spec keys digested, values
    shortened, the code snapshot's files hashed ({relative name: digest})."""
    from amlocal.snapshot import include_entries, snapshot_files

    out: dict[str, Any] = {
        "spec": {
            k: text_digest(json.dumps(v, sort_keys=True, default=str))
            for k, v in parts["_spec"].items()
        },
        "environment": parts["environment"],
        "inputs": {k: _short(v) for k, v in parts["_inputs"].items()},
        "outputs": {k: _short(v) for k, v in parts["_outputs"].items()},
        "run": {k: _short(v) for k, v in parts["_run"].items()},
    }
    root, includes = parts.get("_code") or (None, [])
    files: dict[str, str] = {}
    if root:
        base = Path(root)
        for f in snapshot_files(base):
            rel = f.name if base.is_file() else f.relative_to(base).as_posix()
            files[rel] = file_digest(f, store)
    for rel, src, zipped in include_entries(includes):
        for f in snapshot_files(src) if zipped else [src]:
            files[f"{rel}/{f.relative_to(src).as_posix()}" if zipped else rel] = file_digest(
                f, store
            )
    out["code"] = files
    return out


# azure-ai-ml names every inline (file-referenced) component of a pipeline this: the name
# tells those components apart no more than it does on Azure, where they go by content.
ANONYMOUS = "azureml_anonymous"


def _identity(step: Mapping[str, Any]) -> str:
    """Which earlier runs a step is compared with: those of its named component, or, for an
    anonymous one, those of the pipeline step of the same name (not every anonymous step)."""
    name = (step.get("component") or {}).get("name")
    if name and name != ANONYMOUS:
        return str(name)
    return f"step:{step.get('name') or ''}"


def remember(store: Store, step: Mapping[str, Any], key: str, job: str) -> None:
    """Keep a reusable run's parts, for explaining a later miss of the same component."""
    parts = _pending.get(key)
    if parts is None:
        return
    store.cache_put(f"reuse-parts:{key}", _resolved(parts, store))
    index = f"reuse-history:{_identity(step)}"
    history = [h for h in store.cache_get(index) or [] if h.get("key") != key]
    history.append({"key": key, "job": job})
    store.cache_put(index, history[-HISTORY:])


def explain(store: Store, step: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """`{"compared_to": <job>, "differences": [...]}` for a step that missed, or None when
    no earlier run of its component is known."""
    parts = _pending.get(key)
    history = store.cache_get(f"reuse-history:{_identity(step)}") or []
    if parts is None or not history:
        return None
    now = _resolved(parts, store)
    best: tuple[int, str, list[str]] | None = None
    for h in reversed(history):  # newest first: ties go to the most recent run
        before = store.cache_get(f"reuse-parts:{h['key']}")
        if not before:
            continue
        diffs = differences(before, now)
        if best is None or len(diffs) < best[0]:
            best = (len(diffs), h["job"], diffs)
    if best is None:
        return None
    diffs = best[2] or ["the earlier run's outputs are gone, or it did not complete"]
    return {"compared_to": best[1], "differences": diffs}


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed, in words, part by part."""
    out: list[str] = []
    code_a, code_b = before.get("code") or {}, now.get("code") or {}
    for name in sorted(set(code_a) | set(code_b)):
        if name not in code_a:
            out.append(f"code file {name} was added")
        elif name not in code_b:
            out.append(f"code file {name} was removed")
        elif code_a[name] != code_b[name]:
            out.append(f"code file {name} changed")
    if before.get("environment") != now.get("environment"):
        out.append("environment changed")
    for part, label in (("inputs", "input"), ("outputs", "output"), ("run", "setting")):
        a, b = before.get(part) or {}, now.get(part) or {}
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                out.append(_changed(label, name, a.get(name), b.get(name)))
    spec_a, spec_b = before.get("spec") or {}, now.get("spec") or {}
    for k in sorted(set(spec_a) | set(spec_b)):
        if spec_a.get(k) != spec_b.get(k):
            out.append(f"component {k} changed")
    return out


def _changed(label: str, name: str, a: str | None, b: str | None) -> str:
    if a is None:
        return f"{label} {name} was added"
    if b is None:
        return f"{label} {name} was removed"
    if a.startswith('"sha256:') or a.startswith("sha256:") or len(a) > 60 or len(b) > 60:
        return f"{label} {name} changed (content)"
    return f"{label} {name}: {a} -> {b}"
