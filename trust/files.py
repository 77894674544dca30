"""Writing files so that a reader never sees half of one (temp file, then rename), and so that
what a command makes (an identity, a province's first keys) appears whole or not at all.

The one place the federation writes a file: the registry's held heads, the gateways' saved
views, the nodes' keys and port files, the station's enrolments and the commands' outputs."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from trust.errors import Conflict

SECRET = 0o600
PUBLIC = 0o644


def replace_file(path: Path, data: bytes, *, mode: int = PUBLIC, durable: bool = False) -> None:
    """Write ``path`` whole, over what is there: written under a temporary name of its own
    beside it (two writers never share one), then renamed into place, so a reader sees the
    old file or the new one, never half. ``durable`` also syncs the data and the directory
    entry, so that after a crash the file is the old one or the new one."""
    path = path.absolute()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # mode from the start
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        try:
            _sync_directory(path.parent)
        except OSError as e:  # the file is in place; some file systems cannot sync a directory
            if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
                raise


def write_port_file(path: Path, port: int) -> None:
    """Tell a supervisor which port a server bound (whole: it never reads half a number)."""
    replace_file(path, str(port).encode())


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # mode from the start
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (the entry, not only the data)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes, *, mode: int = PUBLIC) -> None:
    """Create ``path`` whole, never over an existing file (Conflict): written and synced
    under a temporary name, then linked into place, which fails if the name is taken. On a
    file system without hard links (vfat, some network mounts) the file is created in place
    with O_EXCL: still never over another, but a crash may leave it partly written."""
    path = path.absolute()
    if path.exists():
        raise Conflict(f"{path} already exists: refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write_synced(tmp, data, mode)
        os.link(tmp, path)
    except FileExistsError:
        raise Conflict(f"{path} already exists: refusing to overwrite it") from None
    except OSError as e:  # EPERM is what vfat answers to link()
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            _write_synced(path, data, mode)
        except FileExistsError:
            raise Conflict(f"{path} already exists: refusing to overwrite it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _sync_directory(path.parent)


@contextlib.contextmanager
def new_directory(out: Path) -> Iterator[Path]:
    """Build the directory ``out`` all or nothing: the body writes into the temporary sibling
    it is given, which is renamed into place when the body succeeds. An ``out`` that exists
    and is not empty is refused (Conflict) before anything is written; an interrupted run
    leaves only a hidden temporary directory, and the same command can simply be run again."""
    out = out.absolute()  # "." has no name to build the temporary sibling from
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise Conflict(f"{out} already exists and is not empty: refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir(mode=0o700)
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, out)  # atomic; replaces an empty directory, never a full one
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise Conflict(f"{out} was filled while it was being written") from None
            raise Conflict(f"cannot put {out} in place: {e.strerror}") from None
        _sync_directory(out.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)


def write_directory(out: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Create the directory ``out`` holding exactly ``files`` (name -> (data, mode)), all or
    nothing (``new_directory``)."""
    with new_directory(out) as tmp:
        for name, (data, mode) in files.items():
            _write_synced(tmp / name, data, mode)
