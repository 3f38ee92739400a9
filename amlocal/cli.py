"""`amlocal`: a drop-in for `az ml`, with the same command groups, verbs, flags and JSON.

Only the module of the group named on the command line is imported, so `amlocal job show`
or `amlocal online-endpoint invoke` never pay for azure-ai-ml or MLflow.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from amlocal import flag_help
from amlocal.errors import AmlocalError
from amlocal.output import QueryError, compile_query

# group -> (module, help). Each module defines `add_verbs(subparsers, group)`.
GROUPS: dict[str, tuple[str, str]] = {
    "job": ("amlocal.commands.job", "Run, show, stream, cancel and download jobs."),
    "data": ("amlocal.commands.assets", "Data assets."),
    "environment": ("amlocal.commands.assets", "Environments."),
    "component": ("amlocal.commands.assets", "Components."),
    "model": ("amlocal.commands.assets", "Models (the MLflow model registry)."),
    "workspace": ("amlocal.commands.workspace", "The local workspace."),
    "online-endpoint": ("amlocal.commands.online", "Managed online endpoints, served locally."),
    "online-deployment": ("amlocal.commands.online", "Online deployments."),
    "batch-endpoint": ("amlocal.commands.batch", "Batch endpoints."),
    "batch-deployment": ("amlocal.commands.batch", "Batch deployments."),
    "compute": ("amlocal.commands.compute", "Computes: recorded; offline jobs run here."),
    "schedule": ("amlocal.commands.schedule", "Schedules: jobs and model monitors on a trigger."),
}


def _global_flags(p: argparse.ArgumentParser) -> None:
    """Flags every `az` command takes; workspace flags are accepted so scripts run unchanged."""
    g = p.add_argument_group("global")
    g.add_argument(
        "-o",
        "--output",
        default="json",
        choices=["json", "jsonc", "table", "tsv", "yaml", "yamlc", "none"],
        help="Output format.",
    )
    g.add_argument(
        "--query",
        default=None,
        type=compile_query,
        metavar="JMESPATH",
        help="JMESPath query string (as az: the jmespath library). See http://jmespath.org/.",
    )
    offline = "accepted so az ml scripts run unchanged; the workspace is .amlocal/ or AMLOCAL_HOME"
    g.add_argument("-g", "--resource-group", default=None, help=f"Resource group: {offline}.")
    g.add_argument("-w", "--workspace-name", default=None, help=f"Workspace: {offline}.")
    g.add_argument("--subscription", default=None, help=f"Subscription: {offline}.")
    for flag in ("--debug", "--verbose", "--only-show-errors"):
        g.add_argument(
            flag, action="store_true", help="Accepted; amlocal logs the same either way."
        )


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a clear message, as az does for bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"ERROR: {self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser(group: str | None = None) -> Parser:
    """The parser for one group (or all groups, for help and for checking workflow files)."""
    parser = Parser(prog="amlocal", description="Azure ML v2 (`az ml`) on one machine, offline.")
    parser.add_argument(
        "--version", action="store_true", help="print the versions of amlocal and what it runs on"
    )
    groups = parser.add_subparsers(dest="group", metavar="GROUP", parser_class=Parser)
    groups.required = True
    loaded: dict[str, Any] = {}
    for name, (module, help_text) in GROUPS.items():
        gp = groups.add_parser(name, help=help_text, description=help_text)
        if group is not None and name != group:
            continue
        mod = loaded.get(module)
        if mod is None:
            try:
                mod = loaded[module] = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                continue
        verbs = gp.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
        verbs.required = True
        mod.add_verbs(verbs, name)
        for vp in verbs.choices.values():
            _global_flags(vp)
            flag_help.fill(vp, name)
    return parser


def versions() -> str:
    """`az --version`'s layout: the tool, then what it depends on, one per line."""
    from amlocal import packages

    def version(dist: str) -> str:
        return packages.version(dist) or "not installed"

    deps = ("mlflow", "azure-ai-ml", "azureml-inference-server-http")
    lines = [f"amlocal {version('amlocal')}", ""]
    lines += [f"{d:<32}{version(d)}" for d in deps]
    lines += ["", f"Python ({sys.platform}) {sys.version.split()[0]}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Offline by default: MLflow 3 sends usage telemetry from every process that imports it
    # (steps, endpoint instances, batch workers all inherit this). A user's explicit value wins.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if argv[:1] == ["ml"]:  # `amlocal ml job create ...` reads like `az ml ...`
        argv = argv[1:]
    if argv[:1] == ["--version"]:
        sys.stdout.write(versions())
        return 0
    group = argv[0] if argv and argv[0] in GROUPS else None
    parser = build_parser(group)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.error(f"'{args.group}' is not available in this build of amlocal")
    from amlocal.output import emit

    try:
        result = args.func(args)
    except AmlocalError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except UnicodeDecodeError as exc:  # a YAML file (or one it references) that is not UTF-8
        where = getattr(args, "file", None) or "an input file"
        sys.stderr.write(f"ERROR: {where} (or a file it references) is not UTF-8 text: {exc}\n")
        return 2
    except Exception as exc:
        from amlocal.errors import disk_full

        if not disk_full(exc):
            raise
        home = os.environ.get("AMLOCAL_HOME") or "the workspace"
        sys.stderr.write(
            f"ERROR: the disk holding {home} is full ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}). Nothing already recorded or "
            "registered was changed; free some space and run the command again.\n"
        )
        return 1
    code = 0
    if isinstance(result, tuple):
        result, code = result
    fmt = {"jsonc": "json", "yamlc": "yaml"}.get(args.output, args.output)
    try:
        emit(result, fmt, args.query)
    except QueryError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
