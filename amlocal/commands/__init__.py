"""`az ml` command groups, one module each."""
