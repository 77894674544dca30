"""The flags many commands share, each defined once: its name, type, default and help.

A server's options are the fields of its options dataclass (nodes.options); these are the
client commands' common flags (which node, which gateway, which code, which request), added
to each command that takes them with ``FLAG.add(parser)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.options import DEFAULT_GATEWAY_ADDRESS


def code_id_arg(value: str) -> bytes:
    """A code id on the command line: 32 hex characters."""
    try:
        code_id = bytes.fromhex(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError("code id must be 32 hex characters") from e
    if len(code_id) != 16:
        raise argparse.ArgumentTypeError("code id must be 32 hex characters")
    return code_id


@dataclass(frozen=True)
class Flag:
    flag: str
    help: str
    settings: Mapping[str, Any] = field(default_factory=dict)  # argparse's type, default, …

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(self.flag, help=self.help, **self.settings)


PROVINCE = Flag("--province", "the province's GB/T 2260 code", {"required": True})
NODE = Flag("--node", "the province node's address", {"required": True})
GATEWAY = Flag("--gateway", "national gateway address", {"default": DEFAULT_GATEWAY_ADDRESS})
CODE_ID = Flag("--code-id", "code id (32 hex characters)", {"type": code_id_arg, "required": True})
REQUEST_ID = Flag("--request-id", "idempotency key (default: random)", {"default": ""})
PINNED_ROOT = Flag("--root", "pinned national root (default: --tls-dir/root.pem)", {"type": Path})
KEY_DIR = Flag("--dir", "the province's key directory", {"type": Path, "required": True})
