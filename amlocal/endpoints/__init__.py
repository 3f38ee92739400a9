"""Online endpoints served locally: a front door per endpoint in front of azmlinfsrv instances."""
