"""Every flag of every verb says what it does in `--help` (#16 item 11: az's are never bare)."""

from __future__ import annotations

import argparse

import pytest

from amlocal.cli import build_parser


def _verbs(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _verbs(sub, (*path, name))


def test_no_flag_is_bare() -> None:
    verbs = list(_verbs(build_parser()))
    assert len(verbs) > 60
    bare = sorted(
        f"{' '.join(path)} {max(a.option_strings, key=len)}"
        for path, parser in verbs
        for a in parser._actions
        if a.option_strings and not a.help
    )
    assert not bare, f"{len(bare)} flag(s) without help: {bare[:20]}"


def test_the_noun_is_the_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("online-endpoint").parse_args(["online-endpoint", "show", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Name of the online endpoint." in text


def test_every_verbs_help_renders() -> None:
    """argparse %-formats help texts: a bare '%' ("100% of the traffic") made
    `online-deployment create --help` raise TypeError instead of printing."""
    broken = []
    for path, parser in _verbs(build_parser()):
        try:
            parser.format_help()
        except (TypeError, ValueError, KeyError) as exc:
            broken.append(f"{' '.join(path)}: {exc}")
    assert not broken, broken
