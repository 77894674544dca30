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
    option): what argparse converts one value with. (A ``bool`` is a switch: no value.)"""
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


@dataclasses.dataclass(frozen=True)
class _Flag:
    """One option field, read once: its flag, how a value is parsed, whether it repeats."""

    field: dataclasses.Field[Any]
    spec: Option
    flag: str
    parse: Callable[[str], Any]
    repeated: bool  # tuple[T, ...]: given once per value, argparse appends to a list
    switch: bool  # bool: a flag without a value (off unless given)


def _flags(cls: type) -> list[_Flag]:
    hints = typing.get_type_hints(cls)
    return [
        _Flag(
            field=f,
            spec=spec,
            flag=spec.flag or "--" + f.name.replace("_", "-"),
            parse=bool if hints[f.name] is bool else spec.parse or _parser_of(hints[f.name]),
            repeated=typing.get_origin(hints[f.name]) is tuple,
            switch=_switch(f, hints[f.name]),
        )
        for f in dataclasses.fields(cls)
        if (spec := f.metadata.get("option")) is not None
    ]


def _switch(field: dataclasses.Field[Any], annotation: Any) -> bool:
    """A ``bool`` field is a switch: off by default, on when its flag is given."""
    if annotation is not bool:
        return False
    if field.default is not False:
        raise TypeError(f"a switch is off by default: {field.name} = False")
    return True


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argparse option per option field of the dataclass ``cls``, in field order."""
    for flag in _flags(cls):
        field, spec = flag.field, flag.spec
        if flag.switch:
            parser.add_argument(flag.flag, dest=field.name, action="store_true", help=spec.help)
            continue
        extra: dict[str, Any] = {"metavar": spec.metavar} if spec.metavar else {}
        if spec.cli_default is not UNSET:
            extra["default"] = spec.cli_default
        elif field.default is dataclasses.MISSING:
            extra["required"] = True
        elif flag.repeated:
            extra.update(action="append", default=list(field.default))
        else:
            extra["default"] = field.default
        parser.add_argument(flag.flag, dest=field.name, type=flag.parse, help=spec.help, **extra)


def values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The option fields of ``cls`` as parsed into ``args`` (keyword arguments of ``cls``)."""
    found: dict[str, Any] = {}
    for flag in _flags(cls):
        value = getattr(args, flag.field.name)
        found[flag.field.name] = tuple(value) if flag.repeated else value
    return found
