"""What an environment declares, as pip requirements: its conda file (`python=`, conda packages
with their pip names, `pip:` entries with any specifier), a Docker build context's
`requirements.txt` / conda file, or a curated environment's published specification.

Conda's own tooling and native libraries (pip itself, compilers, CUDA, MKL...) have no pip
equivalent that changes what Python code sees; they are left out and named in the warning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal import packages, yamlsafe
from amlocal.hashing import text_digest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from packaging.requirements import Requirement

# Conda package names whose PyPI distribution is called something else.
CONDA_TO_PIP = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "matplotlib-base": "matplotlib",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "pytables": "tables",
    "msgpack-python": "msgpack",
    "tensorflow-cpu": "tensorflow",
    "lightgbm-cpu": "lightgbm",
    "mlflow-skinny": "mlflow-skinny",
}
# Installer tooling: every environment has some version; its pin does not change the step.
TOOLING = {"pip", "setuptools", "wheel", "conda", "mamba"}
# Conda-only native packages (no PyPI equivalent a step imports).
NATIVE = {
    "cudatoolkit", "cudnn", "nccl", "mkl", "mkl-service", "mkl_fft", "mkl_random", "blas",
    "openblas", "openssl", "ca-certificates", "nodejs", "tk", "xz", "zlib", "sqlite",
    "readline", "ncurses", "intel-openmp", "cpuonly", "pytorch-cuda", "git", "curl", "make",
    "gcc", "gxx", "gcc_linux-64", "gxx_linux-64", "ld_impl_linux-64", "tbb", "r-base",
}  # fmt: skip
NATIVE_PREFIXES = ("lib", "_", "cuda-", "magma", "r-")
_CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)")


def normalize(name: str) -> str:
    """PEP 503 name: what `six`, `Six` and `SIX_` all mean."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Spec:
    """An environment's packages as pip requirements, and what could not be expressed so."""

    python: str | None = None  # as declared: "3.10", "3.8.13"
    requirements: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()  # conda-only and Azure-only packages, index options
    origin: str = ""  # "conda file", "build context", "curated sklearn-1.5 (<source>)"
    notes: tuple[str, ...] = field(default=(), compare=False)
    # Resolve as of this date (uv --exclude-newer): a curated image's publication date.
    exclude_newer: str | None = None

    def digest(self) -> str:
        """The content hash of what the environment resolves to (reuse and build keys)."""
        doc: dict[str, object] = {"python": self.python, "requirements": sorted(self.requirements)}
        if self.exclude_newer:  # only then: other environments keep their keys
            doc["exclude_newer"] = self.exclude_newer
        return text_digest(json.dumps(doc, sort_keys=True))


def from_conda(conda: Any, origin: str = "conda file") -> Spec:
    """A conda file (text or parsed) as a Spec."""
    if isinstance(conda, str):
        conda = yamlsafe.load(conda, origin) or {}
    if not isinstance(conda, dict):
        return Spec(origin=origin)
    python = None
    reqs: list[str] = []
    left: list[str] = []
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            for item in dep.get("pip") or []:
                _pip_line(str(item), reqs, left)
            continue
        parsed = _conda_match_spec(str(dep))
        if parsed is None:
            left.append(str(dep))
            continue
        name, ver = parsed
        if name == "python":
            python = ver.lstrip("=<>~!") or None
            if python:
                python = ".".join(python.rstrip(".*").split(".")[:2])
            continue
        if name in TOOLING:
            continue
        if name in NATIVE or name.startswith(NATIVE_PREFIXES):
            left.append(str(dep).strip())
            continue
        reqs.append(CONDA_TO_PIP.get(name, name) + _conda_version(ver))
    return Spec(python=python, requirements=tuple(reqs), left_out=tuple(left), origin=origin)


def _conda_match_spec(dep: str) -> tuple[str, str] | None:
    """(name, version constraint) of a conda match spec: `chan::name`, then `=1.2`, `==1.2`,
    `>=1.2,<2`, `1.2.*` or ` 1.2`, then an optional build string (`=py39h...`, ` py39_0`)."""
    m = _CONDA_SPEC.match(dep.strip().split("::")[-1])
    if m is None:
        return None
    rest = m.group("rest").strip()
    if rest.startswith("=") and not rest.startswith("=="):
        rest = "=" + rest[1:].split("=")[0]
    elif rest:
        rest = rest.split()[0]
    return m.group("name").lower(), rest


def _conda_version(ver: str) -> str:
    """A conda version constraint as a PEP 440 specifier: `=1.2` is the 1.2 series."""
    ver = ver.strip()
    if not ver:
        return ""
    if ver.startswith("=") and not ver.startswith("=="):
        v = ver[1:]
        return f"=={v}" if v.endswith("*") else f"=={v}.*"
    if ver[0].isdigit():  # `numpy 1.22.*` / `numpy 1.22`
        return f"=={ver}" if ver.endswith("*") or ver.count(".") >= 2 else f"=={ver}.*"
    return ver


def _pip_line(line: str, reqs: list[str], left: list[str]) -> None:
    line = line.split(" #", 1)[0].strip()
    if not line or line.startswith("#"):
        return
    if line.startswith("-"):  # index options, -r/-e: only the index this machine reaches
        left.append(line)
        return
    line = line.replace("=={{latest-pypi-version}}", "")
    m = _NAME.match(line)
    if m and normalize(m.group(1)) in TOOLING:
        return
    # `numpy=1.26.4` (one `=`, which conda accepts and Azure's own files use) means `==`.
    line = re.sub(r"^([A-Za-z0-9_.\-\[\]]+)\s*=\s*(?=\d)", r"\1==", line)
    reqs.append(line)


def from_requirements(text: str, origin: str) -> Spec:
    reqs: list[str] = []
    left: list[str] = []
    for line in text.splitlines():
        _pip_line(line, reqs, left)
    return Spec(requirements=tuple(reqs), left_out=tuple(left), origin=origin)


def from_build_context(path: Path) -> Spec:
    """A Docker build context's packages: its conda file and requirements.txt when it has
    them (the Dockerfile's own RUN steps are not replayed)."""
    import yaml

    parts: list[Spec] = []
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.suffix in (".yml", ".yaml") and f.is_file() and f.stat().st_size < 1_000_000:
                try:
                    doc = yamlsafe.load_file(f)
                except yaml.YAMLError:
                    continue
                if isinstance(doc, dict) and "dependencies" in doc:
                    parts.append(from_conda(doc, f"build context {f.name}"))
            elif f.name.endswith("requirements.txt") and f.stat().st_size < 1_000_000:
                parts.append(from_requirements(f.read_text(), f"build context {f.name}"))
    python = next((p.python for p in parts if p.python), None)
    return Spec(
        python=python,
        requirements=tuple(r for p in parts for r in p.requirements),
        left_out=tuple(x for p in parts for x in p.left_out),
        origin="build context",
    )


def of_definition(definition: dict[str, Any] | None) -> Spec:
    """The Spec of an inline or registered environment definition."""
    definition = definition or {}
    conda = definition.get("conda_file")
    if conda:
        return from_conda(conda)
    build = definition.get("build")
    if isinstance(build, dict) and build.get("path"):
        local = Path(str(build["path"]))
        if local.is_dir():
            return from_build_context(local)
    return Spec(origin="image")


def declared_names(requirements: Iterable[str]) -> set[str]:
    """The PEP 503 names that requirement lines name (a line pip cannot read names none)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = set()
    for line in requirements:
        try:
            names.add(normalize(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names


def applicable(spec: Spec) -> Iterator[tuple[str, Requirement | None]]:
    """Each requirement line whose marker holds on this interpreter, parsed (None: a line
    pip cannot read)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for line in spec.requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            yield line, None
            continue
        if req.marker is None or req.marker.evaluate():
            yield line, req


def unmet(spec: Spec) -> list[str]:
    """The requirements the running interpreter (the project venv) does not satisfy."""
    problems = []
    for line, req in applicable(spec):
        if req is None:
            problems.append(f"{line} (not a requirement pip can read)")
            continue
        if req.url:
            problems.append(f"{line} (a URL)")
            continue
        have = packages.version(req.name)
        if have is None:
            problems.append(f"{line} is not installed")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{line} is declared but {have} is installed")
    return problems
