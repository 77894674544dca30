"""replace_file: the one way the federation writes a file over another (saved views, held heads,
port files, enrolments). A reader sees the old file or the new one, never half; a failed write
leaves the old file and no temporary one; concurrent writers never share a temporary name."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from trust import files
from trust.files import PUBLIC, SECRET, replace_file, write_port_file


def test_a_file_is_written_then_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "view.cbor"
    replace_file(path, b"first")
    replace_file(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert [p.name for p in tmp_path.iterdir()] == ["view.cbor"]


@pytest.mark.parametrize(("mode", "expected"), [(SECRET, 0o600), (PUBLIC, 0o644)])
def test_the_mode_is_the_new_files_not_the_old_ones(
    tmp_path: Path, mode: int, expected: int
) -> None:
    path = tmp_path / "enrolments.json"
    path.write_bytes(b"old")
    os.chmod(path, 0o666)
    old_umask = os.umask(0o022)
    try:
        replace_file(path, b"new", mode=mode, durable=True)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == expected
    assert path.read_bytes() == b"new"


@pytest.mark.parametrize("fail_at", ["write", "replace"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    path = tmp_path / "list.state"
    path.write_bytes(b"held")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync" if fail_at == "write" else "replace", broken)
    with pytest.raises(OSError, match="No space left"):
        replace_file(path, b"new head", durable=True)
    assert path.read_bytes() == b"held"
    assert [p.name for p in tmp_path.iterdir()] == ["list.state"]


def test_a_directory_that_cannot_be_synced_still_gets_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems refuse fsync on a directory (EINVAL): the file is in place, so the
    write succeeds; any other failure of that sync is raised."""

    def refuse(_: Path) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(files, "_sync_directory", refuse)
    replace_file(tmp_path / "list.state", b"head", durable=True)
    assert (tmp_path / "list.state").read_bytes() == b"head"

    def broken(_: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files, "_sync_directory", broken)
    with pytest.raises(OSError, match="Input/output"):
        replace_file(tmp_path / "list.state", b"newer", durable=True)


def test_concurrent_writers_and_a_reader_never_meet_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "registry-view.cbor"
    contents = [bytes([i]) * 200_000 for i in range(1, 5)]
    replace_file(path, contents[0])
    torn: list[bytes] = []
    done = threading.Event()

    def write(data: bytes) -> None:
        for _ in range(20):
            replace_file(path, data)

    def read() -> None:
        while not done.is_set():
            seen = path.read_bytes()
            if seen not in contents:
                torn.append(seen[:16])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(data,)) for data in contents]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    assert torn == []
    assert path.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["registry-view.cbor"]


def test_a_port_file_holds_the_number_alone(tmp_path: Path) -> None:
    write_port_file(tmp_path / "node.port", 50051)
    assert (tmp_path / "node.port").read_text() == "50051"
