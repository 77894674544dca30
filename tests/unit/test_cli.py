"""Every `hcx` command says what it does and shows an example in its --help."""

from __future__ import annotations

import argparse

import pytest

from hcx.cli import build_parser


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
