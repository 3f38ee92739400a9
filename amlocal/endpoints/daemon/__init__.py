"""An online endpoint's daemon, a detached process of its own (`python -m
amlocal.endpoints.daemon.main HOME ENDPOINT`): the front door (auth, routing, limits) on the
endpoint's port and the supervisor of its deployments' instances."""
