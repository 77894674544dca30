"""Reading the deployment files the way Docker Compose and hcx would, without a Docker engine.

``docker compose`` interpolates ``${VAR:-default}`` and merges ``<<: *anchor`` (YAML does the
latter); an hcx container's argv is the image's ENTRYPOINT (``hcx``) followed by ``command``,
and its HCX_* variables become option defaults through hcx.config.apply, exactly as in
``hcx.cli.main``.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from hcx import config
from hcx.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HCX_IMAGE = "hcx:local"
# Variables an hcx container may carry that are not hcx options, and why (docs/operations.md):
NON_OPTION_VARIABLES = {
    "HCX_CONFIG": "the TOML config file (hcx --config)",
    "PGPASSWORD": "read by libpq, keeps the PostgreSQL password out of --store and `ps`",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment: the default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


def services() -> dict[str, dict[str, Any]]:
    return dict(load_compose()["services"])


def hcx_services() -> dict[str, dict[str, Any]]:
    """Services running the hcx image with its own entrypoint (the role is the command)."""
    return {
        name: s
        for name, s in services().items()
        if s.get("image") == HCX_IMAGE and "entrypoint" not in s
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    raw = service.get("command") or []
    argv = shlex.split(raw) if isinstance(raw, str) else [str(a) for a in raw]
    return [interpolate(a) for a in argv]


def role_path(argv: list[str]) -> tuple[str, ...]:
    """The (sub)command words before the first option, e.g. ("gateway", "serve")."""
    path: list[str] = []
    for word in argv:
        if word.startswith("-"):
            break
        path.append(word)
    return tuple(path)


class ParseError(Exception):
    """argparse refused an argv; the message is what hcx would print."""


def parse(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    """Parse like ``hcx`` in a container: HCX_* variables first, then the command line."""
    parser = build_parser()
    config.apply(parser, environ=environ or {}, file_values={})
    try:
        return parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on bad input; turn it into a test failure
        if e.code == 0:  # --help
            raise
        raise ParseError(f"hcx {shlex.join(argv)}: argparse exit {e.code}") from e


def command_parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser of one (sub)command, e.g. ("node", "serve")."""
    for candidate, parser in config.commands(build_parser()):
        if candidate == path:
            return parser
    raise KeyError(f"no command 'hcx {' '.join(path)}'")


def option_variables(path: tuple[str, ...]) -> set[str]:
    """HCX_* variables that set an option of this command."""
    return {
        config.env_name(o)
        for action in config.options(command_parser(path))
        for o in action.option_strings
        if o.startswith("--")
    }


def shell_commands(text: str, program: str = "hcx") -> list[list[str]]:
    """``program ...`` invocations in shell text (continuations joined, ``$VAR`` replaced by a
    sample word), as argv lists without the program name."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found: list[list[str]] = []
    for line in joined.splitlines():
        for match in re.finditer(rf"(?:^|\|\||&&|;|\bthen\b)\s*{program}\s+([^;&|#]*)", line):
            words = shlex.split(_sample_variables(match.group(1)))
            found.append(words)
    return found


# A value of the right form for the variables the text asks the operator to fill in.
SAMPLES = {"CODE_ID": "00" * 16}


def _sample_variables(text: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: SAMPLES.get(m.group(1), "sample"), text)
