"""Stock `azmlinfsrv`, bound to 127.0.0.1 instead of its hard-coded 0.0.0.0.

Run as `python -m amlocal.endpoints.loopback <azmlinfsrv args>`. Only the bind host changes:
arguments, environment variables, gunicorn and the Flask app are azmlinfsrv's own. The
process also asks Linux to SIGTERM it when its supervisor dies, so no server outlives the
endpoint daemon that started it.
"""

from __future__ import annotations

import os
import signal
import sys


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the daemon's own cleanup still applies
        pass


def main() -> None:
    _die_with_parent()
    from azureml_inference_server_http import amlserver

    amlserver.DEFAULT_HOST = "127.0.0.1"
    if os.environ.get("AZUREML_MDC_PORT"):  # data_collector: the Collector's transport
        from amlocal.endpoints.collector import keep_alive_transport

        keep_alive_transport()
    if os.environ.get("AMLOCAL_MDC_PAYLOAD"):  # data_collector request/response logging
        from gunicorn.app import wsgiapp

        from amlocal.endpoints.payload_logging import wrap

        load = wsgiapp.WSGIApplication.load_wsgiapp
        wsgiapp.WSGIApplication.load_wsgiapp = lambda self: wrap(load(self))  # type: ignore[method-assign]
    sys.argv[0] = "azmlinfsrv"
    amlserver.run()


if __name__ == "__main__":
    main()
