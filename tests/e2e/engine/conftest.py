"""The engine tests' helpers moved to tests/cli_support.py and the `project` fixture to
tests/conftest.py (one layer for every folder). This re-export keeps tests written against
the old place importing; new tests import from cli_support."""

from cli_support import AMLOCAL, ENV_YML, Project, component

__all__ = ["AMLOCAL", "ENV_YML", "Project", "component"]
