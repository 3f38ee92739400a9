"""Run Azure ML v2 YAML offline with Azure ML semantics."""
