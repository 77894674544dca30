"""Writing files so that a reader never sees half of one (temp file, then rename)."""

from __future__ import annotations

from pathlib import Path


def write_public(path: Path, data: bytes) -> None:
    """Write a non-secret file atomically (certificates, statements, port files)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
