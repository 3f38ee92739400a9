"""`--set` values are parsed as YAML; the plain scalars answered without PyYAML must agree
with yaml.safe_load exactly (value and type), and those answers must not import PyYAML."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys

import pytest
import yaml

from amlocal.loader import _scalar, parse_set

WORDS = [
    *"true True TRUE tRUE false False FALSE yes Yes YES no No NO on On ON off Off OFF".split(),
    *"null Null NULL nULL y n Y N ~ inf nan NaN .inf .nan e5 1e5 1.0e+5 1_000 0x1F 0o17 017".split(),
    *"0 -0 +0 00 007 12 +12 -12 --1 +-1 1.5 -1.5 .5 1. 1:20 2026-12-03 2026-12-03T10:00:00Z".split(),
    *"cpu-cluster azureml:env@latest a.b.c ./data/x.csv _x x_ A-1 a/b a..b x- = << @x".split(),
    "a b",
    "a #c",
    "a: b",
    "'q'",
    '"q"',
    "[1, 2]",
    "{a: 1}",
    "\u00e9t\u00e9",
    "\uff11",
    "",
]


def _agree(value: str) -> None:
    known, parsed = _scalar(value)
    if not known:
        return
    try:
        expected = yaml.safe_load(value)
    except yaml.YAMLError:
        expected = value
    assert (parsed, type(parsed)) == (expected, type(expected)), value


def test_plain_scalars_agree_with_yaml_safe_load() -> None:
    for value in WORDS:
        _agree(value)
    alphabet = "aZe_09.-+/:# '~"
    for n in (1, 2, 3):
        for chars in itertools.product(alphabet, repeat=n):
            _agree("".join(chars))
    rng = random.Random(7)
    for _ in range(3000):
        _agree("".join(rng.choice(alphabet) for _ in range(rng.randint(4, 9))))


@pytest.mark.subprocess
def test_the_common_values_are_answered_without_pyyaml() -> None:
    assert [_scalar(v) for v in ("true", "50", "-3", "cpu-cluster", "a.b/c_d")] == [
        (True, True),
        (True, 50),
        (True, -3),
        (True, "cpu-cluster"),
        (True, "a.b/c_d"),
    ]
    code = (
        "import sys; from amlocal.loader import parse_set;"
        "print(parse_set(['settings.force_rerun=true', 'inputs.alpha=50', 'x=abc']),"
        "'yaml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"
    assert "{'settings.force_rerun': True}" in out.stdout


def test_other_values_still_go_to_yaml() -> None:
    assert parse_set(["a=[1, 2]", "b=1.5", "c=yes", "d=", "e=azureml:x@latest", "f='x: y"]) == [
        {"a": [1, 2]},
        {"b": 1.5},
        {"c": True},
        {"d": ""},
        {"e": "azureml:x@latest"},
        {"f": "'x: y"},
    ]
