"""Content-hashed venvs built with uv, once per user (shared across runs and workspaces).

A venv lives in `<cache>/envs/<hash>/`, where the hash covers the resolved specification and
the interpreter it runs on; `amlocal-env.json` is written last, so a venv without it is an
interrupted build and is rebuilt. Builders of the same venv (two steps, two workspaces) take
a file lock; a finished venv is used without any lock or uv call.

Packages install from wheels (Azure's images get binaries from conda): a declared version
with no wheel for this machine's Python is moved to the nearest series that has one, and said
so. A failure fails the step with uv's own message and the environment named.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amlocal.environments import cache_root
from amlocal.environments.spec import Spec, declared_names, normalize
from amlocal.errors import AmlocalError
from amlocal.hashing import text_digest

META = "amlocal-env.json"
FORMAT = 2  # bump when the layout or build rules change
_UV_TIMEOUT = 1800


@dataclass(frozen=True)
class Built:
    """A finished venv: where its interpreter is and what could not be matched."""

    root: Path
    python_version: str
    warning: str  # "" when everything declared was matched
    mlflow: str | None  # the version of the `mlflow` distribution inside (None: none)
    mlflow_skinny: str | None = None  # mlflow-skinny (no SQL store: it logs over REST only)
    resolved: tuple[str, ...] = ()  # `name==version` of every distribution installed
    exclude_newer: str | None = None  # resolved as of this date (a curated image's)

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"


def uv() -> str:
    """uv from the venv amlocal runs in (pinned in pyproject), else from PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise AmlocalError("building environments needs uv (`pip install uv`); it was not found")
    return found


def find_python(version: str | None) -> tuple[Path, str]:
    """(interpreter, X.Y.Z) for a declared `python=X.Y`: one of this machine's interpreters of
    that minor version (PATH, pyenv), else the one amlocal runs on."""
    own = Path(os.path.realpath(sys.executable))
    own_version = sys.version.split()[0]  # what platform.python_version() reads
    if not version or version == ".".join(own_version.split(".")[:2]):
        return own, own_version
    if not re.fullmatch(r"3\.\d+", version) or int(version.split(".")[1]) < 8:
        return own, own_version  # uv builds venvs for 3.8 and later
    candidates = [shutil.which(f"python{version}")]
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(
        glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"), reverse=True
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for c in candidates:
        if c and "/shims/" not in c and os.access(c, os.X_OK):
            real = Path(os.path.realpath(c))
            m = re.search(r"/versions/(\d+\.\d+\.\d+)/", str(real))
            return real, m.group(1) if m else version
    return own, own_version


def key(spec: Spec, interpreter: Path, python_version: str, serving: tuple[str, ...] = ()) -> str:
    doc = [
        FORMAT,
        spec.digest(),
        str(interpreter),
        python_version,
        sys.platform,
        os.uname().machine,  # platform.machine(), without platform's import (every job)
    ]
    if serving:  # only then: a job's venv keeps its name
        doc.append(sorted(serving))
    return text_digest(json.dumps(doc))[:24]


def load(root: Path) -> Built | None:
    """The finished venv at `root`, or None."""
    try:
        meta = json.loads((root / META).read_text())
    except (OSError, ValueError):
        return None
    return Built(
        root,
        meta["python"],
        meta.get("warning", ""),
        meta.get("mlflow"),
        meta.get("mlflow_skinny"),
        tuple(meta.get("resolved") or ()),
        meta.get("exclude_newer"),
    )


def venv_key(spec: Spec) -> str:
    """The name of the venv `ensure` builds for `spec` on this machine (its content hash)."""
    return key(spec, *find_python(spec.python))


def ensure(spec: Spec, label: str, serving: tuple[str, ...] = ()) -> Built:
    """The venv for `spec`, built now if it is not built yet.

    `serving` (a deployment's venv): what Azure's inference images add to the environment
    (azureml-inference-server-http, mlflow-skinny), installed with what it declares; the
    dependencies neither names then take the project venv's versions when they fit (a set
    known to work together, and in uv's cache offline), any versions otherwise."""
    interpreter, pyver = find_python(spec.python)
    root = cache_root() / key(spec, interpreter, pyver, serving)
    done = load(root)
    if done is not None:
        return done
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = load(root)  # another builder finished while we waited
        if done is not None:
            return done
        sys.stderr.write(f"building environment {label} ({root})\n")
        shutil.rmtree(root, ignore_errors=True)
        # A venv whose build failed is removed (this call made it, under the lock): before,
        # its half (uv's seed, no amlocal-env.json) stayed in the cache until asked again.
        try:
            _build(label, root, interpreter, pyver, spec, serving)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    built = load(root)
    assert built is not None
    return built


def _build(
    label: str, root: Path, interpreter: Path, pyver: str, spec: Spec, serving: tuple[str, ...]
) -> None:
    """Make the venv at `root` and write its amlocal-env.json last (its mark of being done)."""
    _run(label, [uv(), "venv", "--seed", "--python", str(interpreter), str(root)])
    when = spec.exclude_newer
    if serving:
        prefer = _project_pins(root, list(spec.requirements))
        try:
            notes = _install(label, root, [*spec.requirements, *serving], pyver, prefer, when)
        finally:
            prefer.unlink(missing_ok=True)
    else:
        notes = _install(label, root, list(spec.requirements), pyver, exclude_newer=when)
    # uv compiles only what it installs, not the seeded pip/setuptools (~700 files): the
    # rest now, best effort (a file that does not compile is not a broken venv).
    _try([str(root / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(root / "lib")])
    if spec.python and not pyver.startswith(spec.python):
        notes.insert(0, f"python={spec.python} -> {pyver} (not on this machine)")
    if spec.left_out:
        notes.append("left out (Azure-only or no pip equivalent): " + ", ".join(spec.left_out))
    warning = "; ".join(notes)
    have = installed(root)  # one read of the venv's dist-info for every field below
    meta = {
        "python": pyver,
        "warning": warning,
        "mlflow": have.get("mlflow"),
        "mlflow_skinny": have.get("mlflow-skinny"),
        "label": label,
        "requirements": list(spec.requirements),
        "serving": list(serving),
        "exclude_newer": when,
        "resolved": [f"{n}=={v}" for n, v in sorted(have.items())],
    }
    tmp = root / f"{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(root / META)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _run(label: str, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    r = _try(argv, stdin)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip()[-4000:]
        raise AmlocalError(
            f"environment {label}: building its venv failed (uv {argv[1]} {argv[2]}):\n{msg}"
        )
    return r


def _try(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=_env(), timeout=_UV_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 1, "", f"uv timed out after {exc.timeout:g} s")


def _project_pins(root: Path, declared: list[str]) -> Path:
    """A uv constraints file beside the venv at `root`: `name==version` for every
    distribution of the project venv that no line of `declared` names."""
    from amlocal import packages

    named = declared_names(declared)
    lines = [
        f"{name}=={ver}"
        for name, ver in sorted(packages.installed().items())
        if normalize(name) not in named and normalize(name) != "amlocal"
    ]
    path = root.parent / f"{root.name}.constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _install(
    label: str,
    root: Path,
    reqs: list[str],
    pyver: str,
    prefer: Path | None = None,
    exclude_newer: str | None = None,
) -> list[str]:
    """Install `reqs` into the venv at `root` from wheels; returns what was changed.
    `prefer`: constraints tried first (then dropped if they cannot be met). `exclude_newer`:
    every resolution (the probes too) sees only files uploaded before that date, as the index
    was when Azure built a curated image."""
    if not reqs:
        return []
    python = str(root / "bin" / "python")
    dated = ["--exclude-newer", exclude_newer] if exclude_newer else []
    # Bytecode now, once: a shared venv without it compiles on every first import (MLflow:
    # ~20 s on a busy machine), and pip, which Azure's images use, compiles too.
    install = [uv(), "pip", "install", "--compile-bytecode", "--python", python, *dated, "-r", "-"]
    if (
        prefer is not None
        and _try([*install, "--no-build", "-c", str(prefer)], "\n".join(reqs)).returncode == 0
    ):
        return []
    first = _try([*install, "--no-build"], "\n".join(reqs))
    if first.returncode == 0:
        return []
    moved: list[tuple[str, str]] = []  # (declared, package name)
    build_ok: set[str] = set()
    relaxed: list[str] = []
    compile_ = [uv(), "pip", "compile", "--python", python, "--no-deps", "--no-header", *dated, "-"]
    for req in reqs:
        probe = _try([*compile_, "--no-build"], req)
        if probe.returncode == 0 or "building from source is disabled" not in probe.stderr:
            relaxed.append(req)  # fine, or wrong in a way uv's final message will name
            continue
        name, floor = _floor(req)
        if name and floor:
            low = _try([*compile_, "--no-build", "--resolution", "lowest"], f"{name}>={floor}")
            found = _pinned(low.stdout, name) if low.returncode == 0 else None
            if found:
                series = ".".join(found.split(".")[:3])
                relaxed.append(
                    f"{name}~={series}" if series.count(".") >= 2 else f"{name}>={series}"
                )
                moved.append((req, name))
                continue
        relaxed.append(req)
        if name:
            build_ok.add(normalize(name))
    if build_ok:
        others = [_floor(r)[0] for r in relaxed]
        flags = [f"--no-build-package={n}" for n in others if n and normalize(n) not in build_ok]
    else:
        flags = ["--no-build"]
    _run(label, [*install, *flags], "\n".join(relaxed))
    have = installed(root)
    return [
        f"{req} -> {n} {have.get(normalize(n))} (no wheel for Python {pyver})" for req, n in moved
    ]


def _floor(req: str) -> tuple[str | None, str | None]:
    """(name, lowest version the requirement allows) for `==`, `~=`, `>=` and `==X.*`."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        r = Requirement(req)
    except InvalidRequirement:
        return None, None
    for s in r.specifier:
        if s.operator in ("==", "~=", ">=", "==="):
            return r.name, s.version.rstrip(".*")
    return r.name, None


def _pinned(compiled: str, name: str) -> str | None:
    for line in compiled.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m and normalize(m.group(1)) == normalize(name):
            return m.group(2)
    return None


def installed(root: Path) -> dict[str, str]:
    """{PEP 503 name: version} of the distributions installed in the venv at `root`."""
    found: dict[str, str] = {}
    for info in root.glob("lib/python*/site-packages/*.dist-info"):
        dist, _, ver = info.name.removesuffix(".dist-info").rpartition("-")
        found[normalize(dist)] = ver
    return found
