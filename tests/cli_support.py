"""A throwaway Azure ML project with its own AMLOCAL_HOME, driven through the real `amlocal`
CLI in subprocesses (the `project` fixture in tests/conftest.py makes one per test)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

AMLOCAL = [sys.executable, "-m", "amlocal.cli"]

ENV_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: testenv
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
"""


class Project:
    """A temporary Azure ML project folder plus the CLI bound to its workspace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".amlocal"
        self.env = {**os.environ, "AMLOCAL_HOME": str(self.home)}
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def run(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [*AMLOCAL, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"amlocal {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
            )
        return r

    def imports(self, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
        """Run `amlocal <args>` under `python -X importtime`: the result and the set of
        modules the command imported (start-up checks: what a verb must not load)."""
        r = subprocess.run(
            [sys.executable, "-X", "importtime", *AMLOCAL[1:], *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        modules = {ln.split("|")[-1].strip() for ln in r.stderr.splitlines() if "|" in ln}
        return r, modules

    def az_script(self, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a shell script written for `az ml` unchanged in the project folder, with `az`
        swapped for amlocal (`az() { shift; amlocal "$@"; }`), as an Azure user runs theirs."""
        bin_dir = Path(sys.executable).parent
        return subprocess.run(
            ["bash", "-c", f'az() {{ shift; amlocal "$@"; }}; export -f az; bash {script}'],
            cwd=self.root,
            env={**self.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    def create(
        self, path: str, *extra: str, check: bool = True
    ) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        r = self.run("job", "create", "-f", path, "--stream", *extra, check=check)
        return (json.loads(r.stdout) if r.stdout.strip() else {}), r

    def steps(self, name: str) -> dict[str, dict[str, Any]]:
        return {c["display_name"]: c for c in self.json("job", "list", "--parent-job-name", name)}


def component(
    name: str,
    command: str,
    inputs: str = "",
    outputs: str = "",
    code: str = "./src",
    extra: str = "",
) -> str:
    """A command component YAML."""
    return (
        "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\n"
        f"name: {name}\ntype: command\nversion: 1\ncode: {code}\n"
        "environment: azureml:testenv@latest\n"
        f"command: >-\n  {command}\n"
        + (f"inputs:\n{textwrap.indent(textwrap.dedent(inputs), '  ')}" if inputs else "")
        + (f"outputs:\n{textwrap.indent(textwrap.dedent(outputs), '  ')}" if outputs else "")
        + extra
    )


def write_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of `name` (its module reports the version), as a build backend
    writes one: the files, METADATA, WHEEL and a RECORD with their hashes."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: amlocal-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    whl = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return whl


def wait_until(cond: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll `cond` every `every` seconds until it returns something true (returned), or fail
    the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")
