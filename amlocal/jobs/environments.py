"""Azure ML environments, locally: steps run in the project's venv after a check that it has
each pinned package; `--isolate-environments` builds one content-hashed venv per environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from amlocal import assets
from amlocal.errors import AmlocalError, InvalidInput
from amlocal.hashing import text_digest
from amlocal.workspace import Workspace

_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+?)\s*==\s*([^\s;#]+)")


def resolve(ws: Workspace, env: Any, where: str) -> dict[str, Any]:
    """An environment reference or inline definition as {label, definition, identity}."""
    if env is None:
        return {"label": "(none)", "definition": None, "identity": "none"}
    if isinstance(env, dict):
        definition = env
        label = env.get("name") or "inline"
    elif isinstance(env, str) and env.startswith("azureml://registries/"):
        # Curated/registry environments can't be reproduced offline: name them and move on.
        return {"label": env, "definition": None, "identity": env, "curated": True}
    elif isinstance(env, str) and env.startswith("azureml:"):
        try:
            record = assets.get(ws, "environment", env)
        except AmlocalError as exc:
            raise InvalidInput(f"{where}: environment {env}: {exc}") from None
        definition = record
        label = f"{record['name']}:{record['version']}"
    else:
        raise InvalidInput(f"{where}: environment '{env}' is not a reference or definition")
    body = {k: definition.get(k) for k in ("image", "conda_file", "build", "inference_config")}
    identity = text_digest(json.dumps(body, sort_keys=True, default=str))
    return {"label": label, "definition": body, "identity": identity}


def pins(definition: dict[str, Any] | None) -> dict[str, str]:
    """`pkg==version` pins from an environment's conda file (pip section and conda deps)."""
    conda = (definition or {}).get("conda_file") or {}
    if isinstance(conda, str):
        import yaml

        conda = yaml.safe_load(conda) or {}
    out: dict[str, str] = {}
    for dep in conda.get("dependencies") or []:
        items = dep.get("pip", []) if isinstance(dep, dict) else []
        for item in items:
            if m := _PIN.match(str(item)):
                out[_norm(m.group(1))] = m.group(2)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def mismatches(definition: dict[str, Any] | None) -> list[str]:
    """Each pinned package the current interpreter lacks or has at another version."""
    from importlib import metadata

    problems = []
    for name, want in sorted(pins(definition).items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={want} is not installed")
            continue
        if have != want:
            problems.append(f"{name}=={want} is pinned but {have} is installed")
    return problems


def python_bin_dir(ws: Workspace, env: dict[str, Any], isolate: bool) -> Path:
    """The bin folder whose `python` runs the step."""
    if not isolate or not env.get("definition"):
        return Path(sys.executable).parent
    target = ws.env_dir(env["identity"][:16])
    marker = target / ".amlocal-ready"
    if not marker.exists():
        _build_venv(target, pins(env["definition"]))
        marker.write_text(env["label"])
    return target / "bin"


def _build_venv(target: Path, pinned: dict[str, str]) -> None:
    """One venv per environment content hash, built once and reused across runs."""
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    reqs = [f"{n}=={v}" for n, v in sorted(pinned.items())]
    if reqs:
        r = subprocess.run(
            [str(target / "bin" / "python"), "-m", "pip", "install", "-q", *reqs],
            capture_output=True,
            text=True,
            env={**os.environ},
        )
        if r.returncode != 0:
            raise AmlocalError(f"building environment venv {target} failed:\n{r.stderr[-2000:]}")
