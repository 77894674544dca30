"""Every `hcx` command says what it does and shows an example in its --help."""

from __future__ import annotations

import argparse
import shlex

import pytest

from hcx.cli import build_parser
from nodes.provincial.issuance import validate_id_number


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_the_roles_of_the_brief_exist():
    roles = {path[0] for path, _ in COMMANDS if len(path) == 1}
    assert {"registry", "node", "gateway", "checkpoint", "sim"} <= roles


@pytest.mark.parametrize(
    ("path", "parser"), COMMANDS, ids=[" ".join(p) or "hcx" for p, _ in COMMANDS]
)
def test_help_describes_and_shows_an_example(path, parser, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*path, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert parser.description, f"hcx {' '.join(path)} has no description"
    assert "example:" in text and "hcx" in text.split("example:")[1]


def _example(parser: argparse.ArgumentParser) -> list[str]:
    text = (parser.epilog or "").split("example:", 1)[1].strip().splitlines()[0]
    return shlex.split(text.split("#", 1)[0])


NETWORK_FLAGS = ("--gateway", "--node")


@pytest.mark.parametrize(
    ("path", "parser"),
    [(p, c) for p, c in COMMANDS if len(p) >= 2 and not c._subparsers],
    ids=[" ".join(p) for p, c in COMMANDS if len(p) >= 2 and not c._subparsers],
)
def test_every_example_parses_and_runs_as_shown(path, parser):
    """An example copied from --help parses; one that calls a server says with which
    identity (every link is mutual TLS); a resident ID in it has a valid check character."""
    argv = _example(parser)
    assert argv[0] == "hcx"
    args = build_parser().parse_args(argv[1:])
    assert args.handler is not None
    if any(flag in argv for flag in NETWORK_FLAGS):
        assert "--tls-dir" in argv or "--insecure-dev-only" in argv, " ".join(argv)
    if "--id-number" in argv:
        validate_id_number(argv[argv.index("--id-number") + 1])


@pytest.mark.parametrize("colour", ["red", "RED", "Red", "yellow", "GREEN"])
def test_colour_names_are_case_insensitive(colour):
    args = build_parser().parse_args(
        ["node", "set-status", "--node", "127.0.0.1:7001", "--code-id", "00" * 16,
         "--colour", colour, "--insecure-dev-only"]
    )  # fmt: skip
    assert args.colour == colour.lower()
