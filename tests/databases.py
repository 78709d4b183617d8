"""The SQL databases the tests run the durable stores on: SQLite always, PostgreSQL when present.

PostgreSQL is the server DATABASE_URL (or OPTSCAN_DATABASE_URL) names, else one on
127.0.0.1:5432 (user postgres, trust auth) if it answers at once. The session gets a private
database on it, dropped at the end; each test a private schema in it. Without a server the
PostgreSQL cases are skipped, unless DATABASE_URL named one: then they fail, saying why.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# Taken out of the environment so that the apps, commands and servers the tests start use
# their own SQLite files, as without it; the PostgreSQL cases pass their URL explicitly.
_NAMED = os.environ.pop("DATABASE_URL", None) or os.environ.pop("OPTSCAN_DATABASE_URL", None)
os.environ.pop("OPTSCAN_DATABASE_URL", None)
_LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"

BACKENDS = ("sqlite", "postgresql")


def _libpq(url: sa.URL) -> str:
    """Return `url` as libpq (psycopg.connect) takes it."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _unusable(url: sa.URL) -> str | None:
    """Return why the server of `url` cannot be used, or None when it answers."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    host, port = url.host or "127.0.0.1", url.port or 5432
    try:  # a quick probe first: connecting to a silent address waits for its timeout
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError as exc:
        return f"no PostgreSQL server at {host}:{port} ({exc})"
    try:
        psycopg.connect(_libpq(url), connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {host}:{port} refused the connection ({exc})"
    return None


def _admin(url: sa.URL, statement: str, name: str) -> None:
    """Run one statement naming the database or schema `name`, outside a transaction."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[sa.URL]:
    """Yield the URL of a private database on the test PostgreSQL server."""
    server = sa.make_url(_NAMED or _LOCAL)
    problem = _unusable(server)
    if problem is not None:
        if _NAMED:
            pytest.fail(f"DATABASE_URL names a PostgreSQL server that cannot be used: {problem}")
        pytest.skip(problem)
    name = f"optscan_test_{uuid.uuid4().hex[:12]}"
    _admin(server, "CREATE DATABASE {}", name)
    yield server.set(drivername="postgresql+psycopg", database=name)
    _admin(server, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def database_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """Return a fresh, empty database of `backend`: a SQLite file's Path or a PostgreSQL URL."""
    if backend == "sqlite":
        return tmp_path / "watchlist.sqlite3"
    database: sa.URL = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin(database, "CREATE SCHEMA {}", schema)
    # Every connection made through this URL creates and finds its tables in that schema.
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    text = url.render_as_string(hide_password=False)

    def close_pool() -> None:
        from optscan.store.sql.database import open_database

        open_database(text).dispose()

    request.addfinalizer(close_pool)
    return text


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Return a fresh, empty database: a SQLite file's Path, then a PostgreSQL URL."""
    return database_target(request.param, tmp_path, request)
