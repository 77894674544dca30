"""Options come from the command line, the environment or a TOML file, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcx import config
from hcx.cli import build_parser
from trust.errors import InvalidRequest

ARGV = ["gateway", "serve"]


def parse(argv, *, environ=None, file_values=None):
    parser = build_parser()
    config.apply(parser, environ=environ or {}, file_values=file_values)
    return parser.parse_args(argv)


def test_environment_supplies_a_required_option_and_converts_types():
    args = parse(ARGV, environ={"HCX_ROOT_CERT": "/etc/hcx/root.pem", "HCX_RELAY_TIMEOUT": "0.25"})
    assert args.root_cert == Path("/etc/hcx/root.pem")
    assert args.relay_timeout == 0.25


def test_command_line_beats_environment_beats_file():
    file_values = {"gateway": {"listen": "0.0.0.0:1", "root-cert": "/file.pem"}}
    args = parse(
        [*ARGV, "--listen", "127.0.0.1:3"],
        environ={"HCX_LISTEN": "127.0.0.1:2"},
        file_values=file_values,
    )
    assert args.listen == "127.0.0.1:3"
    args = parse(ARGV, environ={"HCX_LISTEN": "127.0.0.1:2"}, file_values=file_values)
    assert (args.listen, args.root_cert) == ("127.0.0.1:2", Path("/file.pem"))


def test_bad_value_is_a_clear_error():
    with pytest.raises(InvalidRequest, match="relay-timeout"):
        parse([*ARGV, "--root-cert", "x"], environ={"HCX_RELAY_TIMEOUT": "soon"})


def test_unreadable_config_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "hcx.toml"
    bad.write_text("listen = [")
    with pytest.raises(InvalidRequest, match="config file"):
        config.load_file(bad)
