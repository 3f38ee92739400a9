"""`--set` takes several KEY=VALUE pairs after one flag, as az ml's generic update argument
does (`az ml schedule update -n s --set a=1 b=2`), in every group."""

from __future__ import annotations

import argparse

import pytest

from amlocal.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))
    yield path, parser


@pytest.mark.parametrize("verb", ["create", "update"])
def test_schedule_set_takes_several_pairs(verb: str) -> None:
    args = build_parser("schedule").parse_args(
        ["schedule", verb, "-n", "s", "-f", "s.yml", "--set", "a=1", "b=2", "--set", "c=3"]
    )
    assert args.set == ["a=1", "b=2", "c=3"]


def test_every_set_flag_takes_several_pairs() -> None:
    with_set = [
        (path, action)
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if "--set" in action.option_strings
    ]
    assert len(with_set) > 5
    wrong = [" ".join(path) for path, action in with_set if action.nargs != "+"]
    assert not wrong, f"--set takes one pair only in: {wrong}"
