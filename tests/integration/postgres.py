"""A real PostgreSQL server on 127.0.0.1 for the tests, started from Debian's binaries
(simulations.loopback.run_postgres).

``postgres_server`` (session) runs initdb in a temporary directory and starts the server; each
test asks ``postgres_dsn`` for a fresh database. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` system user in a directory that user owns. Without
PostgreSQL the tests are skipped, except in CI, where that is a failure (tests.support.require).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from simulations.loopback import PostgresServer, find_bin_dir, run_postgres
from tests.support import missing

__all__ = ["PostgresServer", "find_bin_dir", "postgres_dsn", "postgres_server", "run_postgres"]


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
