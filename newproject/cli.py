"""`make new-project`: a new git repository rendered from this one by copier.

Every input is checked before anything is written (exit 2 naming the problem); the project
is rendered into a temporary folder beside DEST and moved into place only once it is
complete and committed, so a failure leaves nothing behind.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# Azure ML endpoint names (azure-ai-ml validate_endpoint_or_deployment_name: 3-32 characters,
# a letter first, letters, digits and '-', alphanumeric last), lowercase because component
# names derive from it (`<name>_prep_data`: ^[a-z][a-z0-9_]*$), at most 24 characters so the
# longest derived endpoint name (`<name>-retrain`) still fits in 32.
NAME_RULE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_MIN, NAME_MAX = 3, 24
MAX_DATA_BYTES = 512 << 20
MAX_CLASSES = 100
BATCH_FILES = 4
BATCH_ROWS = 200
DEFAULT_DATA = ROOT / "data" / "diabetes.csv"
DEFAULT_TARGET = "target"


class InputError(Exception):
    """Bad input: exit 2 with this message, nothing written."""


@dataclass
class Project:
    name: str
    dest: Path
    task: str
    examples: bool
    data: Path | None
    target: str
    frame: pd.DataFrame

    @property
    def features(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.target]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make new-project", description=__doc__)
    parser.add_argument("--name", required=True, help="NAME: the project's name")
    parser.add_argument("--dest", default="", help="DEST: an empty or new folder (../NAME)")
    parser.add_argument("--task", default="", help="TASK: regression (default) or classification")
    parser.add_argument("--data", default="", help="DATA: your CSV, the new data asset")
    parser.add_argument("--target", default="", help="TARGET: the label column of DATA")
    parser.add_argument("--examples", default="", help="EXAMPLES=digits keeps the digits scenario")
    return parser.parse_args(argv)


def check_name(name: str) -> str:
    if not NAME_MIN <= len(name) <= NAME_MAX or not NAME_RULE.match(name):
        raise InputError(
            f"NAME={name!r}: must be {NAME_MIN}-{NAME_MAX} characters of lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit (Azure ML "
            "endpoint names: 3-32 characters, and `<NAME>-retrain` must fit; component names "
            "`<NAME>_prep_data` must be lowercase)"
        )
    return name


def check_dest(dest: Path) -> Path:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"DEST={dest}: exists and is not an empty folder; choose a new one")
    if ROOT == dest.resolve() or ROOT in dest.resolve().parents:
        raise InputError(f"DEST={dest}: is inside this repository; choose a folder outside it")
    return dest


def read_data(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"DATA={path}: no such file")
    if path.stat().st_size > MAX_DATA_BYTES:
        raise InputError(f"DATA={path}: larger than {MAX_DATA_BYTES >> 20} MiB")
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"DATA={path}: not a readable CSV ({exc})") from exc
    if len(frame) < 10 or len(frame.columns) < 2:
        raise InputError(f"DATA={path}: needs a header, at least 2 columns and 10 rows")
    return frame


def check_columns(frame: pd.DataFrame, data: Path, target: str, task: str) -> None:
    if target not in frame.columns:
        raise InputError(
            f"TARGET={target!r}: not a column of {data} (columns: {', '.join(map(str, frame.columns))})"
        )
    for column in frame.columns:
        if column != target and not pd.api.types.is_numeric_dtype(frame[column]):
            raise InputError(
                f"DATA={data}: feature column {column!r} is not numeric; the starter trains on "
                "numeric features (encode it first, or drop it)"
            )
    missing = [str(c) for c in frame.columns if frame[c].isna().any()]
    if missing:
        raise InputError(f"DATA={data}: missing values in column(s) {', '.join(missing)}")
    labels = frame[target].nunique()
    if task == "classification" and not 2 <= labels <= MAX_CLASSES:
        raise InputError(
            f"TARGET={target!r}: {labels} distinct values; TASK=classification needs 2 to "
            f"{MAX_CLASSES} classes"
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(frame[target]):
        raise InputError(f"TARGET={target!r}: not numeric; use TASK=classification for labels")


def validate(args: argparse.Namespace) -> Project:
    """Every rule, before anything is written."""
    name = check_name(args.name)
    dest = check_dest(Path(args.dest or ROOT.parent / name).expanduser())
    task = args.task or "regression"
    if task not in ("regression", "classification"):
        raise InputError(f"TASK={task!r}: regression or classification")
    if args.examples not in ("", "digits"):
        raise InputError(f"EXAMPLES={args.examples!r}: the only example is digits")
    if args.target and not args.data:
        raise InputError("TARGET: given without DATA (the diabetes data's label is 'target')")
    if not args.data:
        if task == "classification":
            raise InputError(
                "TASK=classification: the diabetes data is a regression set; bring a labelled "
                "CSV with DATA=file.csv TARGET=column"
            )
        return Project(
            name, dest, task, bool(args.examples), None, DEFAULT_TARGET, pd.read_csv(DEFAULT_DATA)
        )
    if not args.target:
        raise InputError("TARGET: required with DATA (the label column of your CSV)")
    data = Path(args.data).expanduser()
    frame = read_data(data)
    check_columns(frame, data, args.target, task)
    return Project(name, dest, task, bool(args.examples), data, args.target, frame)


def _number(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else value


def answers(project: Project) -> dict[str, Any]:
    """copier.yml's questions, answered."""
    rows = project.frame[project.features].head(2).to_numpy().tolist()
    return {
        "name": project.name,
        "task": project.task,
        "examples": project.examples,
        "own_data": project.data is not None,
        "target": project.target,
        "features": [str(c) for c in project.features],
        "sample_rows": [[_number(v) for v in row] for row in rows],
        # write_data's batch files, or the diabetes batch folder (every row of the data)
        "batch_rows": min(len(project.frame), BATCH_ROWS) if project.data else len(project.frame),
    }


def write_data(project: Project, root: Path) -> None:
    """The brought CSV as the data asset's file, and batch-scoring samples without the label."""
    assert project.data is not None
    shutil.copyfile(project.data, root / "data" / f"{project.name}.csv")
    batch = root / "data" / f"{project.name}-batch"
    batch.mkdir(parents=True, exist_ok=True)
    rows = project.frame[project.features].head(BATCH_ROWS)
    size = math.ceil(len(rows) / BATCH_FILES)
    for i in range(BATCH_FILES):
        part = rows.iloc[i * size : (i + 1) * size]
        if len(part):
            part.to_csv(batch / f"{project.name}-batch-{i}.csv", index=False)
    (root / "data" / "README.md").write_text(
        f"# data/\n\n| file | what |\n| --- | --- |\n"
        f"| `{project.name}.csv` | the project's data ({len(project.frame)} rows; label "
        f"`{project.target}`), copied from `{project.data.name}` by `make new-project` |\n"
        f"| `{project.name}.yml` | the Azure ML data asset over it (`{project.name}:1`, "
        "`uri_file`) |\n"
        f"| `{project.name}-batch/` | its first {len(rows)} rows without the label, in "
        f"{BATCH_FILES} files, for batch scoring |\n\n"
        "When the CSV changes, bump `version` in the data asset YAML and the "
        f"`azureml:{project.name}:<version>` reference in `pipelines/train.yml`.\n"
    )


def git(root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "make new-project"),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "new-project@localhost"),
    }
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def tracked_files(src: Path, dest: Path) -> Path:
    """The files git tracks in `src`, as they are in the working tree (uncommitted edits
    included), copied into `dest`; returns the folder to render. Untracked files (a user's
    churn.csv beside the Makefile, scratch notes) are never part of a new project: copier
    alone would render the whole working tree. Without git, `src` itself."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached"], cwd=src, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return src
    for raw in filter(None, listed.split(b"\0")):
        rel = os.fsdecode(raw)
        source, target = src / rel, dest / rel
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the working tree, or a submodule
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


def render(project: Project, out: Path) -> None:
    """copier renders this repository's tracked files (working tree edits included) into
    `out`."""
    import copier

    sys.path.insert(0, str(ROOT))  # copier imports newproject.names.ProjectNames
    source = tracked_files(ROOT, out.parent / "template")
    copier.run_copy(
        str(source),
        out,
        data=answers(project),
        defaults=True,
        unsafe=True,  # our own Jinja extension
        quiet=True,
        skip_tasks=True,
    )


def create(project: Project) -> None:
    parent = project.dest.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{project.name}-", dir=parent))
    try:
        out = work / "project"
        render(project, out)
        if project.data is not None:
            write_data(project, out)
        git(out, "init", "-q", "-b", "main")
        git(out, "add", "-A")
        git(out, "commit", "-q", "-m", f"{project.name}: new project from the amlocal template")
        if project.dest.exists():
            project.dest.rmdir()  # checked empty
        out.rename(project.dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    try:
        project = validate(parse_args(argv))
    except InputError as error:
        print(f"make new-project: {error}", file=sys.stderr)
        return 2
    create(project)
    print(f"{project.dest}: new {project.task} project '{project.name}' (git, one commit).")
    print(f"  cd {project.dest} && make train   # then: docs/bring-your-own-code.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
