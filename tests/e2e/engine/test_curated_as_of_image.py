"""A curated environment's unpinned packages resolve as of its image's release (#28 item 1),
through the CLI.

Offline: uv reads a PEP 691 index served on 127.0.0.1 by this test, whose files carry upload
times (PEP 700), as PyPI's do; `--exclude-newer` is decided on those times (a `--find-links`
folder has none, so it holds only the venv's seed packages: ensurepip's pip and setuptools and
a probe `wheel`). uv's cache is the test's own, so the probe distributions never reach the
user's. The row used is `minimal-ubuntu22.04-py311-cpu-inference` (Python 3.11, the machine's):
`azureml-inference-server-http` unpinned and `numpy==1.26.4`, released 2024-06-11T19:00:10Z.
"""

from __future__ import annotations

import ensurepip
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_support import Project, write_wheel

from amlocal.environments.curated_table import CURATED

ROW = "minimal-ubuntu22.04-py311-cpu-inference"
SERVER = "azureml-inference-server-http"


def _serve(files: dict[str, list[tuple[Path, str]]]) -> tuple[ThreadingHTTPServer, str]:
    """A PEP 691 JSON simple index of `files` ({project: [(wheel, upload time)]}) on
    127.0.0.1; any other project is a 404 (uv then looks in --find-links)."""
    by_name = {w.name: w for entries in files.values() for w, _ in entries}

    class Index(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
            self._reply(head=True)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(head=False)

        def _reply(self, head: bool) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            body: bytes | None = None
            kind = "application/vnd.pypi.simple.v1+json"
            if len(parts) == 2 and parts[0] == "simple" and parts[1] in files:
                host = f"http://127.0.0.1:{self.server.server_address[1]}"
                doc = {
                    "meta": {"api-version": "1.1"},
                    "name": parts[1],
                    "files": [
                        {
                            "filename": w.name,
                            "url": f"{host}/files/{w.name}",
                            "hashes": {"sha256": hashlib.sha256(w.read_bytes()).hexdigest()},
                            "upload-time": when,
                        }
                        for w, when in files[parts[1]]
                    ],
                }
                body = json.dumps(doc).encode()
            elif len(parts) == 2 and parts[0] == "files" and parts[1] in by_name:
                body, kind = by_name[parts[1]].read_bytes(), "application/octet-stream"
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/simple"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    wheels = tmp_path / "index"
    files = {
        SERVER: [
            (write_wheel(wheels, SERVER, "1.0.0"), "2024-01-02T00:00:00Z"),  # before the image
            (write_wheel(wheels, SERVER, "9.0.0"), "2025-01-02T00:00:00Z"),  # after it
        ],
        "numpy": [(write_wheel(wheels, "numpy", "1.26.4"), "2024-02-05T00:00:00Z")],
    }
    seed = tmp_path / "seed"
    seed.mkdir()
    for whl in (Path(ensurepip.__file__).parent / "_bundled").glob("*.whl"):
        shutil.copy(whl, seed)
    write_wheel(seed, "wheel", "0.43.0")
    httpd, url = _serve(files)
    try:
        yield url, seed
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_unpinned_package_resolves_as_of_the_image_release(
    project: Project, tmp_path: Path, index: tuple[str, Path]
) -> None:
    url, seed = index
    assert CURATED[ROW]["built"] == "2024-06-11T19:00:10Z"
    project.env.pop("AMLOCAL_ENVIRONMENTS", None)
    for var in ("UV_OFFLINE", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX", "PIP_INDEX_URL"):
        project.env.pop(var, None)
    project.env.update(
        UV_DEFAULT_INDEX=url,
        UV_FIND_LINKS=str(seed),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        AMLOCAL_CACHE_DIR=str(tmp_path / "cache"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    project.write(
        "job.yml",
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python -c "import azureml_inference_server_http as m; print('server', m.__version__)"
        environment: azureml:AzureML-{ROW}@latest
        """,
    )
    job, r = project.create("job.yml", "--isolate-environments")
    assert job["status"] == "Completed", r.stderr
    assert "server 1.0.0" in r.stderr  # 9.0.0 was uploaded after the image
    resolved = next(ln for ln in r.stderr.splitlines() if ": resolved as of " in ln)
    assert f"resolved as of {CURATED[ROW]['built']}: " in resolved
    assert f"{SERVER}==1.0.0" in resolved and "numpy==1.26.4" in resolved
