"""Named workspaces under one amlocal home, as `-w/--workspace-name` and `-g/--resource-group`
select them in `az ml`.

The home (`.amlocal/` or AMLOCAL_HOME) is itself the default workspace, "local": a home made
before named workspaces existed is that workspace, read in place, nothing moved. A named
workspace is `<home>/workspaces/<name>/` with the same layout and a `workspace.json` naming it
and its resource group; each has its own store, MLflow store, jobs and endpoints, so one cannot
see another's. Selecting a workspace points AMLOCAL_HOME at its folder for this process and
everything it starts (steps, daemons, instances), which is how they already find a workspace.

The default when no `-w` is given: `az configure --defaults workspace=<name> group=<rg>` as
az keeps it (here `amlocal configure --defaults ...`, written to `<home>/config.json`), or the
environment variables az reads for those defaults (AZURE_DEFAULTS_WORKSPACE,
AZURE_DEFAULTS_GROUP), else "local".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from amlocal import names as naming
from amlocal import state
from amlocal.errors import InvalidInput
from amlocal.workspace import NAMED_DIR, WORKSPACE_FILE, WORKSPACE_NAME, home_dir

CONFIG_FILE = "config.json"
# Azure's workspace name rule: 3-33 characters, a letter or digit first, then letters, digits,
# '-' and '_' (azure-ai-ml's workspace schema).
_RULE = "3-33 characters, a letter or digit first, then letters, digits, '-' or '_'"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}")
_GROUP = re.compile(r"[-\w._()]{1,90}")


def root() -> Path:
    """The amlocal home: AMLOCAL_HOME (or ./.amlocal), or the home a named workspace's folder
    belongs to when AMLOCAL_HOME points at one (a step or daemon of that workspace)."""
    home = home_dir()
    if home.parent.name == NAMED_DIR and (home / WORKSPACE_FILE).is_file():
        return home.parent.parent
    return home


def check_name(name: object, flag: str = "--name") -> str:
    return naming.checked(name, _NAME, "workspace", _RULE, flag)


def check_group(group: object, flag: str = "--resource-group") -> str:
    if not isinstance(group, str) or not _GROUP.fullmatch(group) or group.endswith("."):
        raise InvalidInput(
            f"{flag}: invalid resource group name {group!r}: use 1-90 letters, digits, "
            f"'-', '_', '.', '(' or ')', not ending with '.'"
        )
    return group


def folder(name: str, base: Path | None = None) -> Path:
    """A workspace's folder (it may not exist yet)."""
    base = base or root()
    if name == WORKSPACE_NAME:
        return base
    return base / NAMED_DIR / check_name(name, "--workspace-name")


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text()[:65536])
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """A workspace's or registry's record, or config.json: whole or not at all, readable."""
    state.write_json(path, doc, pretty=True)


def defaults(base: Path | None = None) -> dict[str, str]:
    """`az configure --defaults` as amlocal keeps them: config.json, then az's variables."""
    saved = _read((base or root()) / CONFIG_FILE).get("defaults") or {}
    out = {k: str(v) for k, v in saved.items() if k in ("workspace", "group") and v}
    for key, var in (("workspace", "AZURE_DEFAULTS_WORKSPACE"), ("group", "AZURE_DEFAULTS_GROUP")):
        if os.environ.get(var):
            out[key] = os.environ[var]
    return out


def configure(pairs: list[str]) -> dict[str, str]:
    """`configure --defaults workspace=dev group=rg` (an empty value clears one)."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    doc = _read(base / CONFIG_FILE)
    saved = dict(doc.get("defaults") or {})
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in ("workspace", "group"):
            raise InvalidInput(
                f"--defaults: expected workspace=<name> or group=<resource group>, got {pair!r}"
            )
        if not value:
            saved.pop(key, None)
            continue
        check_name(value, "--defaults workspace") if key == "workspace" else check_group(value)
        saved[key] = value
    doc["defaults"] = saved
    write_json(base / CONFIG_FILE, doc)
    return saved


def record(name: str, base: Path | None = None) -> dict[str, Any] | None:
    """A workspace's `workspace.json` (the default workspace's is implied); None if absent."""
    base = base or root()
    if name == WORKSPACE_NAME:
        return {"name": WORKSPACE_NAME, "resource_group": "local"}
    doc = _read(folder(name, base) / WORKSPACE_FILE)
    return doc if doc.get("name") == name else None


def select(name: str | None, group: str | None) -> Path:
    """The folder of the workspace `-w`/`-g` (or the defaults) name; an unknown one is refused,
    as Azure refuses a workspace that does not exist. `-g` alone keeps the current workspace
    (scripts pass it everywhere), and the default workspace takes any resource group."""
    base = root()
    if name is None:
        chosen = defaults(base)  # read once: this runs before every verb
        name = chosen.get("workspace")
        group = group or chosen.get("group")
    if name is None:
        return home_dir()
    rec = record(name, base)
    if rec is None:
        raise InvalidInput(
            f"--workspace-name: workspace '{name}' does not exist in the amlocal home {base}; "
            f"create it with `amlocal workspace create --name {name}`"
            + (f" --resource-group {group}" if group else "")
        )
    if name != WORKSPACE_NAME and group and rec.get("resource_group") != group:
        raise InvalidInput(
            f"--resource-group: workspace '{name}' is in resource group "
            f"'{rec.get('resource_group')}', not '{group}'"
        )
    return folder(name, base)


def activate(name: str | None, group: str | None) -> None:
    """Point this process (and what it starts) at the selected workspace."""
    os.environ["AMLOCAL_HOME"] = str(select(name, group))


def create(
    name: str, group: str | None, description: str | None, tags: dict[str, str]
) -> dict[str, Any]:
    """`workspace create`: a new workspace folder, made whole (a partial folder renamed into
    place); creating an existing one updates its description and tags, as az does."""
    base = root()
    check_name(name)
    if name == WORKSPACE_NAME:
        raise InvalidInput(
            f"--name: '{WORKSPACE_NAME}' is the default workspace; pick another name"
        )
    group = check_group(group) if group else "local"
    dest = folder(name, base)
    existing = record(name, base)
    if existing is not None:
        if existing.get("resource_group") != group:
            raise InvalidInput(
                f"--name: workspace '{name}' already exists in resource group "
                f"'{existing.get('resource_group')}'"
            )
        if description is not None:
            existing["description"] = description
        existing.setdefault("tags", {}).update(tags)
        write_json(dest / WORKSPACE_FILE, existing)
        return existing
    doc = {
        "name": name,
        "resource_group": group,
        "description": description,
        "tags": tags,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{name}.{os.getpid()}.partial")
    partial.mkdir()
    try:
        write_json(partial / WORKSPACE_FILE, doc)
        try:
            partial.rename(dest)
        except OSError:  # created meanwhile by another process: theirs stands
            pass
    finally:
        if partial.exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(partial)
    return record(name, base) or doc


def names(base: Path | None = None) -> list[str]:
    """Every workspace of the home: the default first, then the named ones."""
    base = base or root()
    found = []
    parent = base / NAMED_DIR
    if parent.is_dir():
        for child in sorted(parent.iterdir()):
            if not child.name.startswith(".") and record(child.name, base) is not None:
                found.append(child.name)
    return [WORKSPACE_NAME, *found]
