"""`code:` with a symbolic link to a folder (issue 32, item 7): its files are in the snapshot,
as Azure's upload follows the link (before: os.walk skipped it, the files were silently
missing from the job's working directory); a link back to an enclosing folder is not
followed for ever."""

from __future__ import annotations

from pathlib import Path

from amlocal.snapshot import materialize, snapshot_files


def test_a_linked_folder_is_in_the_snapshot(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "util.py").write_text("X = 1\n")
    code = tmp_path / "src"
    code.mkdir()
    (code / "main.py").write_text("import util\n")
    (code / "lib").symlink_to(shared, target_is_directory=True)
    (code / "loop").symlink_to(code, target_is_directory=True)  # a cycle
    files = {f.relative_to(code).as_posix() for f in snapshot_files(code)}
    assert files == {"main.py", "lib/util.py"}, files
    dest = tmp_path / "wd"
    materialize(code, dest)
    assert (dest / "lib" / "util.py").read_text() == "X = 1\n"
    assert not (dest / "lib").is_symlink()
