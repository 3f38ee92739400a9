"""`amlocal studio`: serve the studio on 127.0.0.1 (the preferred port if free, else any free
one; `--port` exactly, or exit 2 at once if it is taken), record the port in the workspace
for the links the CLI prints, print the address once it answers, stop on Ctrl-C."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
from pathlib import Path

from amlocal.errors import InvalidInput
from amlocal.studio import HOST, STATE_FILE, preferred_port, running_port


def bind(port: int | None) -> socket.socket:
    """A listening socket on 127.0.0.1: `port` exactly, else the preferred port or any."""
    candidates = [port] if port is not None else [preferred_port(), 0]
    for i, p in enumerate(candidates):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, p))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or i == len(candidates) - 1:
                raise InvalidInput(
                    f"--port {p}: {HOST}:{p} is in use ({exc.strerror}); pick another port or omit --port"
                ) from None
            continue
        sock.listen(128)
        sock.set_inheritable(False)
        return sock
    raise AssertionError("unreachable")


def serve(home: Path, tracking_uri: str, port: int | None) -> int:
    import uvicorn

    from amlocal.state import write_json
    from amlocal.studio.app import create_app

    sock = bind(port)
    bound = sock.getsockname()[1]
    state = home / STATE_FILE
    if running_port(home) is None:  # a second studio on the workspace leaves links to the first
        write_json(state, {"pid": os.getpid(), "port": bound})
    url = f"http://{HOST}:{bound}/"

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            print(f"amlocal studio: {url} (workspace {home}; Ctrl-C stops it)", flush=True)

    config = uvicorn.Config(
        create_app(home, tracking_uri), log_level="warning", access_log=False, lifespan="off"
    )
    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m amlocal.studio.server [--port N]` (what `make studio` runs)."""
    import argparse

    from amlocal.workspace import Workspace

    ap = argparse.ArgumentParser(prog="amlocal studio", description=__doc__)
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args(argv)
    ws = Workspace()
    try:
        return serve(ws.home, ws.mlflow_tracking_uri, args.port)
    except InvalidInput as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
