"""Stock `azmlinfsrv`, bound to 127.0.0.1 instead of its hard-coded 0.0.0.0.

Run as `python -m amlocal.endpoints.instance.loopback <azmlinfsrv args>`. Only the bind host changes:
arguments, environment variables, gunicorn and the Flask app are azmlinfsrv's own. The
process also asks Linux to SIGTERM it when its supervisor dies, so no server outlives the
endpoint daemon that started it. With AMLOCAL_INSTANCE_TOKEN set (the daemon sets it), the
app answers 401 to any request without that token in `x-amlocal-instance`: only the
endpoint's front door (and its probes) can use the instance, as on Azure, where instances
are not reachable from outside the endpoint.
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

_REFUSED = b'{"message": "this port serves only its endpoint\'s front door; use the scoring URI"}'


def guard(app: Callable[..., Any], token: str) -> Callable[..., Any]:
    """WSGI middleware: requests without the instance token get 401, before the app."""
    expected = token.encode("latin-1")

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        got = environ.get("HTTP_X_AMLOCAL_INSTANCE", "").encode("latin-1")
        if not hmac.compare_digest(got, expected):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [_REFUSED]
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return guarded


def _wrap_app(wrappers: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> None:
    """Apply `wrappers`, innermost first, to the app gunicorn's workers import (they fork
    from this process, so the patched loader is theirs too)."""
    from gunicorn import util

    load = util.import_app

    def import_app(module: str) -> Callable[..., Any]:
        app: Callable[..., Any] = load(module)
        for wrap in wrappers:
            app = wrap(app)
        return app

    util.import_app = import_app


def deep_nesting_is_a_bad_request(app: Callable[..., Any]) -> Callable[..., Any]:
    """azmlinfsrv 1.4.1 parses a POST body with json.loads and lets the RecursionError of a
    body nested beyond Python's limit reach its catch-all handler: an opaque 500 for the
    client's mistake. A handler for it goes next to that catch-all, in every handler map
    (Flask looks in the blueprint's map before the app's, and within a map takes the most
    specific class): 400 with azmlinfsrv's error shape. On Azure the same server answers 500."""
    spec = getattr(app, "error_handler_spec", None)  # a Flask app
    if spec is not None:
        for name in [None, *spec]:
            spec[name][None][RecursionError] = lambda exc: ({"message": _TOO_DEEP}, 400)
            # json.loads' other failures on a body (issue 32): an integer over Python's
            # 4,300-digit limit, bytes that are not UTF-8 (a gzip body, say) raise ValueError,
            # which azmlinfsrv does not catch. The scoring script's own errors never get here
            # (azmlinfsrv wraps them in UserScriptException and answers 500 itself).
            spec[name][None][ValueError] = lambda exc: (
                {"message": f"the body could not be parsed as JSON: {str(exc)[:200]}"},
                400,
            )
    return app


_TOO_DEEP = "the JSON body is nested too deeply to parse"

# Set by the endpoint daemon: a Unix socket gunicorn listens on besides the TCP port. The
# front door forwards over it: no TCP handshake, FIN and TIME_WAIT per request (azmlinfsrv's
# sync workers close every connection), which cut the front door's CPU per request by ~17 %
# and brought its throughput from 0.93x to 1.01x azmlinfsrv direct at c16 (issue 33). The
# TCP port stays for the probes and for anyone who starts azmlinfsrv's way.
SOCKET_ENV = "AMLOCAL_INSTANCE_SOCKET"


def bind_unix_socket(path: str) -> None:
    """Add `unix:<path>` to the binds of the gunicorn app azmlinfsrv runs."""
    from gunicorn.app import wsgiapp

    load = wsgiapp.WSGIApplication.load_config

    def load_config(self: Any) -> None:
        load(self)
        self.cfg.set("bind", [*self.cfg.bind, f"unix:{path}"])

    wsgiapp.WSGIApplication.load_config = load_config


def exclusive_accept_wait() -> None:
    """Idle gunicorn sync workers wait for a connection in select(), so every connection
    wakes all of them; one accepts, the rest get EAGAIN and sleep again (gunicorn #792, the
    thundering herd). Here they wait in epoll with EPOLLEXCLUSIVE on the listeners (Linux
    4.5+), which wakes one idle worker per connection, as nginx's accept does. It counts
    where an instance is mostly idle (the green of a blue/green endpoint): 2 workers at one
    connection, 661 -> 634 us of worker CPU and 1,353 -> 1,441 requests/s; requests that
    woke both workers 40 of 40 -> none (test_instance_accept.py). Busy workers never wait,
    so a saturated instance is unchanged (c16: 614 and 624 us). Requests, signals and
    timeouts are handled as before: the worker's wake-up pipe is in the same epoll."""
    import errno
    import select

    from gunicorn.workers import sync

    if not hasattr(select, "EPOLLEXCLUSIVE"):
        return

    def wait(self: Any, timeout: float) -> list[Any] | None:
        poller = getattr(self, "_amlocal_poller", None)
        if poller is None:
            poller = select.epoll()
            for listener in self.sockets:
                poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
            poller.register(self.PIPE[0], select.EPOLLIN)
            self._amlocal_poller = poller
            self._amlocal_fds = {listener.fileno(): listener for listener in self.sockets}
        try:
            self.notify()
            events = poller.poll(timeout)
        except OSError as e:  # as sync.SyncWorker.wait
            if e.args[0] == errno.EINTR:
                return list(self.sockets)
            if e.args[0] == errno.EBADF:
                if self.nr < 0:
                    return list(self.sockets)
                raise sync.StopWaiting from None
            raise
        ready = []
        for fd, _ in events:
            if fd == self.PIPE[0]:
                os.read(self.PIPE[0], 1)
                ready.append(self.PIPE[0])
            elif fd in self._amlocal_fds:
                ready.append(self._amlocal_fds[fd])
        return ready or None

    sync.SyncWorker.wait = wait


def main() -> None:
    from amlocal.procs import die_with_parent

    die_with_parent()
    if os.environ.get("AZUREML_MDC_PORT"):  # data_collector: the Collector's transport
        from amlocal.endpoints.instance.collector_transport import batching_transport

        batching_transport()
    # Innermost first: the Flask app's own handlers, payload logging, then the token guard.
    wrappers: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        deep_nesting_is_a_bad_request
    ]
    if os.environ.get("AMLOCAL_MDC_PAYLOAD"):  # request/response logging, inside the guard
        from amlocal.endpoints.instance.payload_logging import wrap

        wrappers.append(wrap)
    socket_path = os.environ.pop(SOCKET_ENV, "")
    if socket_path:
        bind_unix_socket(socket_path)
    token = os.environ.pop("AMLOCAL_INSTANCE_TOKEN", "")  # the scoring script cannot read it
    if token:
        wrappers.append(lambda app: guard(app, token))
    _wrap_app(wrappers)
    exclusive_accept_wait()
    from azureml_inference_server_http import amlserver

    amlserver.DEFAULT_HOST = "127.0.0.1"
    sys.argv[0] = "azmlinfsrv"
    amlserver.run()


if __name__ == "__main__":
    main()
