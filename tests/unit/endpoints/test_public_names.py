"""Code outside amlocal (this repository's src/deploy step, which a generated project copies)
reaches endpoints through the names of the `amlocal.endpoints` package only, never a module
inside it, so those modules can move without breaking user code."""

from __future__ import annotations

import ast
from pathlib import Path

import amlocal.endpoints as endpoints

SRC = Path(__file__).resolve().parents[3] / "src"


def _endpoint_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("amlocal.endpoints")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("amlocal.endpoints"):
                found += [f"{node.module}.{a.name}" for a in node.names]
            elif node.module == "amlocal":
                found += [f"amlocal.{a.name}" for a in node.names if a.name == "endpoints"]
    return found


def test_src_imports_no_endpoint_module() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert files
    public = {f"amlocal.endpoints.{n}" for n in endpoints.__all__} | {"amlocal.endpoints"}
    used = {(str(f.relative_to(SRC)), i) for f in files for i in _endpoint_imports(f)}
    assert used, "src/deploy reaches amlocal's endpoints"
    assert {u for u in used if u[1] not in public} == set()


def test_every_public_name_resolves() -> None:
    for name in endpoints.__all__:
        assert callable(getattr(endpoints, name)), name
