"""Configuration defined once: a server's options are the fields of one dataclass.

Each field that is an option says its type (the annotation), its default (the field's) and its
help (``option(...)``). The command line (``add_options``) is generated from it, and from the
command line the ``HCX_*`` variables, the TOML keys and docs/configuration.md (hcx.config), so
none of them restates a default. ``values(cls, args)`` reads the parsed options back into the
dataclass's keyword arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Where the national gateway serves by default, and where every command looks for it.
DEFAULT_GATEWAY_ADDRESS = "127.0.0.1:50051"


class _Unset:
    """No command-line default of its own (``dataclasses.MISSING`` cannot be a field default)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclasses.dataclass(frozen=True)
class Option:
    help: str
    flag: str | None = None  # the long option; by default --<field-name-with-hyphens>
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # by default the annotation's type
    # The command line's default where the dataclass has none (code must say it, a flag may
    # be left out); UNSET: the field's default, if any.
    cli_default: Any = UNSET


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    cli_default: Any = UNSET,
) -> Any:
    """A dataclass field that is also a command-line option (no default: a required one, on
    the command line too unless ``cli_default`` gives the flag one)."""
    spec = Option(help=help, flag=flag, metavar=metavar, parse=parse, cli_default=cli_default)
    meta = {"option": spec}
    return dataclasses.field(default=default, metadata=meta)


def _parser_of(annotation: Any) -> Callable[[str], Any]:
    """str, int, float or Path, optionally ``| None``, or ``tuple[str, ...]`` (a repeatable
    option): what argparse converts one value with."""
    if typing.get_origin(annotation) is tuple:
        annotation = _repeated(annotation)
    if isinstance(annotation, types.UnionType | typing._UnionGenericAlias):  # type: ignore[attr-defined]
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"an option is of one type, not {annotation}")
        annotation = kinds[0]
    if annotation not in (str, int, float, Path):
        raise TypeError(f"no command-line form for an option of type {annotation}")
    return annotation


def _repeated(annotation: Any) -> Any:
    item, *rest = typing.get_args(annotation)
    if rest != [Ellipsis]:
        raise TypeError(f"a repeatable option is tuple[T, ...], not {annotation}")
    return item


def _is_repeated(field: dataclasses.Field[Any], cls: type) -> bool:
    return typing.get_origin(typing.get_type_hints(cls)[field.name]) is tuple


def _options(cls: type) -> list[tuple[dataclasses.Field[Any], Option, Callable[[str], Any]]]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("option")
        if spec is not None:
            found.append((f, spec, spec.parse or _parser_of(hints[f.name])))
    return found


def flag_of(field: dataclasses.Field[Any], spec: Option) -> str:
    return spec.flag or "--" + field.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argparse option per option field of the dataclass ``cls``, in field order."""
    for field, spec, parse in _options(cls):
        extra: dict[str, Any] = {"metavar": spec.metavar} if spec.metavar else {}
        if spec.cli_default is not UNSET:
            extra["default"] = spec.cli_default
        elif field.default is dataclasses.MISSING:
            extra["required"] = True
        elif _is_repeated(field, cls):  # given once per value; argparse appends to a list
            extra.update(action="append", default=list(field.default))
        else:
            extra["default"] = field.default
        parser.add_argument(
            flag_of(field, spec), dest=field.name, type=parse, help=spec.help, **extra
        )


def values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The option fields of ``cls`` as parsed into ``args`` (keyword arguments of ``cls``)."""
    return {
        field.name: tuple(value) if _is_repeated(field, cls) else value
        for field, _, _ in _options(cls)
        for value in [getattr(args, field.name)]
    }
