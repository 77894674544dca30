"""A real PostgreSQL server on 127.0.0.1 for the tests, started from Debian's binaries.

``postgres_server`` (session) runs initdb in a temporary directory and starts the server; each
test asks ``postgres_dsn`` for a fresh database. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` system user in a directory that user owns. Without
PostgreSQL the tests are skipped, except in CI, where that is a failure (tests.support.require).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support import missing, wait_until

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PostgresServer:
    port: int
    datadir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin with initdb, or initdb on PATH."""
    base = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in base.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_server_user(argv: list[str]) -> list[str]:
    """Prefix a command so it runs as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_datadir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="hcx-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


def _wait_ready(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    def accepts_connections() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            psycopg.connect(server.dsn(), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    wait_until(
        accepts_connections,
        timeout=START_TIMEOUT_S,
        interval=0.1,
        what=f"postgres on port {server.port} to accept connections (log: {log})",
    )


@contextlib.contextmanager
def run_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """initdb + postgres on a free port; stopped (fast shutdown) and removed afterwards."""
    root = _make_datadir()
    datadir, log = root / "data", root / "server.log"
    subprocess.run(
        _as_server_user([str(bin_dir / "initdb"), "-D", str(datadir), "-A", "trust",
                         "-U", "postgres", "-E", "UTF8", "--no-instructions"]),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    server = PostgresServer(port=_free_port(), datadir=datadir)
    with log.open("wb") as out:
        process = subprocess.Popen(
            _as_server_user([str(bin_dir / "postgres"), "-D", str(datadir),
                             "-p", str(server.port), "-k", str(root),
                             "-c", "listen_addresses=127.0.0.1"]),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        _wait_ready(server, process, log)
        yield server
    finally:
        process.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        missing(what="PostgreSQL (initdb)", install="apt-get install postgresql")
    with run_postgres(bin_dir) as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"hcx_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.dsn(name)
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
