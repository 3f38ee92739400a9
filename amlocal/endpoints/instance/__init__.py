"""What runs inside a deployment instance's process (`python -m
amlocal.endpoints.instance.loopback`): stock azmlinfsrv bound to 127.0.0.1, payload logging
around its app, and the Collector's transport to the data-collector agent.

Kept free of imports: every instance (and each of its gunicorn workers) imports it first."""
