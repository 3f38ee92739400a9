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
    "workspace": ("amlocal.commands.workspaces", "Local workspaces (-w/-g select one)."),
    "registry": ("amlocal.commands.registry", "Registries shared by every workspace."),
    "online-endpoint": ("amlocal.commands.online", "Managed online endpoints, served locally."),
    "online-deployment": ("amlocal.commands.online", "Online deployments."),
    "batch-endpoint": ("amlocal.commands.batch", "Batch endpoints."),
    "batch-deployment": ("amlocal.commands.batch", "Batch deployments."),
    "compute": ("amlocal.commands.compute", "Computes: recorded; offline jobs run here."),
    "schedule": ("amlocal.commands.schedule", "Schedules: jobs and model monitors on a trigger."),
}


STUDIO_HELP = "The local studio on 127.0.0.1: jobs, pipeline graphs, endpoints, models, schedules."


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
    home = "workspaces of the amlocal home (.amlocal/ or AMLOCAL_HOME): `amlocal workspace create`"
    g.add_argument("-g", "--resource-group", default=None, help=f"Resource group of the {home}.")
    g.add_argument("-w", "--workspace-name", default=None, help=f"One of the {home}.")
    g.add_argument("--subscription", default=None, help="Accepted; offline there is one.")
    for flag in ("--debug", "--verbose", "--only-show-errors"):
        g.add_argument(
            flag, action="store_true", help="Accepted; amlocal logs the same either way."
        )


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a clear message, as az does for bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"ERROR: {self.prog}: {message}\n")
        sys.stderr.write(similar(message))
        raise SystemExit(2)


def similar(message: str) -> str:
    """az's hint for a misspelt group or verb ("The most similar choice to 'jbo' is:"),
    from argparse's "invalid choice: 'jbo' (choose from 'job', ...)"; else nothing."""
    import difflib
    import re

    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not found:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    close = difflib.get_close_matches(found.group(1), choices, n=3, cutoff=0.6)
    if not close:
        return ""
    word = "choice" if len(close) == 1 else "choices"
    verb = "is" if len(close) == 1 else "are"
    lines = "".join(f"\t{c}\n" for c in close)
    return f"The most similar {word} to '{found.group(1)}' {verb}:\n{lines}"


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
    # Not an `az ml` group: amlocal's own web app (main() runs it, amlocal.studio.server).
    studio = groups.add_parser("studio", help=STUDIO_HELP, description=STUDIO_HELP)
    studio.add_argument(
        "--port", type=int, help="serve on this port (default: 8765, else a free one)"
    )
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


def _configure(argv: list[str]) -> int:
    """`configure --defaults workspace=dev group=rg`: the workspace used without -w."""
    p = Parser(prog="amlocal configure", description="Set the default workspace and group.")
    p.add_argument("-d", "--defaults", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("-l", "--list-defaults", action="store_true")
    args = p.parse_args(argv)
    from amlocal import workspaces
    from amlocal.output import emit

    try:
        saved = workspaces.configure(args.defaults) if args.defaults else workspaces.defaults()
    except AmlocalError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return exc.exit_code
    if args.list_defaults:
        emit([{"name": k, "value": v} for k, v in saved.items()], "json", None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line. As a process of its own (no `argv`: the console script, `python -m
    amlocal.cli`) a command of a group runs as a fork of the resident server when one runs
    (amlocal.resident); `workspace` verbs, which list and stop that server, never do."""
    resident = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    # Offline by default: MLflow 3 sends usage telemetry from every process that imports it
    # (steps, endpoint instances, batch workers all inherit this). A user's explicit value wins.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if argv[:1] == ["ml"]:  # `amlocal ml job create ...` reads like `az ml ...`
        argv = argv[1:]
    if resident and argv[:1] and argv[0] in GROUPS and argv[0] != "workspace":
        from amlocal.resident import client

        code = client.run("cli", argv)
        if code is not None:
            return code
    return run_here(argv)


def run_here(argv: list[str]) -> int:
    """Run one command in this process."""
    if argv[:1] == ["--version"]:
        sys.stdout.write(versions())
        return 0
    if argv[:1] == ["configure"]:  # `az configure --defaults workspace=<name> group=<rg>`
        return _configure(argv[1:])
    if argv[:1] == ["studio"]:  # `amlocal studio [--port N]`: the local studio's web server
        from amlocal.studio.server import main as studio

        return studio(argv[1:])
    group = argv[0] if argv and argv[0] in GROUPS else None
    parser = build_parser(group)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.error(f"'{args.group}' is not available in this build of amlocal")
    from amlocal.output import emit

    try:
        from amlocal import workspaces

        workspaces.activate(args.workspace_name, args.resource_group)
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
