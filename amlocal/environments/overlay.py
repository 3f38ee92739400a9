"""A step's own venv over a shared one, so its `pip install` never reaches the shared venv.

An overlay is what `uv venv` writes (pyvenv.cfg, bin/python linked to the interpreter, an
empty site-packages) plus one `.pth` line that adds the base venv's site-packages (and runs
its .pth files) after the overlay's own: the step sees every base package, and pip or uv
install into the overlay, shadowing base versions without touching them (pip does not
uninstall what lies outside the environment it installs into). `pip`/`pip3` in the overlay's
bin run the overlay's interpreter, so a bare `pip install` lands there too. Writing these few
files takes about a millisecond, so any step can have one.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

# A command or script that may install or remove packages.
_INSTALLS = re.compile(
    r"\b(?:pip[0-9.]*|uv|conda|mamba|micromamba|easy_install|ensurepip)\b|-m\s*pip\b"
)
_SCRIPT_MAX = 1_000_000


def needed(command: str, cwd: Path) -> bool:
    """Whether a step may change packages: its command, or a .py/.sh script it names in its
    working directory, mentions an installer."""
    if _INSTALLS.search(command):
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for word in words:
        if word.endswith((".py", ".sh")) and not word.startswith("-"):
            path = (cwd / word).resolve()
            if path.is_relative_to(cwd.resolve()) and path.is_file():
                with path.open("rb") as f:
                    text = f.read(_SCRIPT_MAX).decode("utf-8", "replace")
                if _INSTALLS.search(text):
                    return True
    return False


def mentions_mlflow_install(command: str) -> bool:
    """A command that installs an MLflow of its own (whose client may not open the store)."""
    return bool(re.search(r"\b(?:pip[0-9.]*|uv)\b[^;&|]*\binstall\b[^;&|]*mlflow", command))


def create(base_bin: Path, dest: Path) -> Path:
    """An overlay venv at `dest` over the venv whose bin folder is `base_bin`; its bin."""
    base = base_bin.parent
    cfg = _cfg(base / "pyvenv.cfg")
    sites = sorted(base.glob("lib/python*/site-packages"))
    if not sites:
        raise OSError(f"{base} is not a venv (no lib/python*/site-packages)")
    site = sites[0]
    real = Path(os.path.realpath(base_bin / "python"))
    bin_dir = dest / "bin"
    own_site = dest / site.relative_to(base)
    own_site.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    version = cfg.get("version") or cfg.get("version_info", "")
    (dest / "pyvenv.cfg").write_text(
        f"home = {cfg.get('home', real.parent)}\n"
        "include-system-site-packages = false\n"
        f"version = {version}\n"
        f"amlocal-overlay-of = {base}\n"
    )
    minor = site.parent.name  # python3.11
    for name in ("python", "python3", minor):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(real)
    (own_site / "_amlocal_overlay.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    for name in ("pip", "pip3", f"pip{minor.removeprefix('python')}"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{bin_dir}/python" -m pip "$@"\n')
        script.chmod(0o755)
    return bin_dir


def _cfg(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out
