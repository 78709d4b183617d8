"""The SQL data layer of the durable stores: SQLite in the instance folder, or PostgreSQL.

Every durable store (the watchlist; positions and history next) reads and writes through a
`Database`, with SQLAlchemy Core:
- `read()`: one consistent read;
- `write(name)`: one short read-modify-write transaction that no other writer of the store
  `name` interleaves with. SQLite: BEGIN IMMEDIATE takes the file's write lock at the first
  statement. PostgreSQL: a transaction-scoped advisory lock named after the store serialises its
  writers on every host, while readers carry on from their snapshots;
- `migrate(component, steps)`: versioned schema changes, each applied once and in order, inside
  the same kind of lock, with the version of each component kept in the table `optscan_schema`.
SQLite keeps what the sqlite3 code before it did: WAL journal, a busy timeout, and a connection
per operation (safe to share between threads and across fork). PostgreSQL keeps a small pool,
checked before use, and renewed in a forked child.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "Database",
    "Migration",
    "SchemaTooNew",
    "open_database",
    "sqlite_url",
]

BUSY_TIMEOUT_SECONDS = 10.0

# One step of a component's schema: run once, inside the migration's transaction.
Migration = Callable[[Connection], None]

_SCHEMA_LOCK = "optscan:schema"
_versions = sa.Table(
    "optscan_schema",
    sa.MetaData(),
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer optscan than this one."""


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of the SQLite file at `path`."""
    return sa.URL.create("sqlite", database=str(Path(path).resolve())).render_as_string()


class Database:
    """One SQL database, named by a SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…)."""

    def __init__(self, url: str):
        """Remember the URL; the engine and, for SQLite, the file are made on first use."""
        self.url = sa.make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        file = self.url.database if self.dialect == "sqlite" else None
        self.path = Path(file) if file and file != ":memory:" else None
        self._engine: Engine | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """Return the engine, made on first use (and its pool renewed after a fork)."""
        if self._engine is None:
            self._engine = self._make_engine()
        elif self._pid != os.getpid():
            # A forked child must not use its parent's pooled connections.
            self._engine.dispose(close=False)
        self._pid = os.getpid()
        return self._engine

    def _make_engine(self) -> Engine:
        if self.dialect == "postgresql":
            return sa.create_engine(self.url, pool_pre_ping=True)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _enable_wal(self.path)
        engine = sa.create_engine(
            self.url, poolclass=sa.NullPool, connect_args={"timeout": BUSY_TIMEOUT_SECONDS}
        )
        event.listen(engine, "connect", _sqlite_manual_transactions)
        event.listen(engine, "begin", _sqlite_begin)
        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection for one consistent read (nothing it does is committed)."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, name: str) -> Iterator[Connection]:
        """Yield a connection in a transaction that holds store `name`'s write lock throughout.

        Commits when the block ends, rolls back if it raises. Waits up to the busy timeout for
        another writer, then raises sqlalchemy.exc.OperationalError.
        """
        with self.engine.connect().execution_options(optscan_write=True) as conn, conn.begin():
            if self.dialect == "postgresql":
                timeout_ms = int(BUSY_TIMEOUT_SECONDS * 1000)
                conn.execute(sa.text(f"SET LOCAL lock_timeout = {timeout_ms}"))
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(name))))
            yield conn

    def migrate(self, component: str, steps: Sequence[Migration]) -> None:
        """Bring `component`'s schema to version len(steps), running each missing step once."""
        if self._version(component) == len(steps):
            return
        with self.write(_SCHEMA_LOCK) as conn:
            _versions.create(conn, checkfirst=True)
            current = _read_version(conn, component)
            if current > len(steps):
                raise SchemaTooNew(
                    f"{self!r} holds version {current} of the {component} schema; this optscan"
                    f" knows versions up to {len(steps)}: upgrade optscan"
                )
            for step in steps[current:]:
                step(conn)
            if current == 0:
                conn.execute(_versions.insert().values(component=component, version=len(steps)))
            elif current < len(steps):
                conn.execute(
                    _versions.update()
                    .where(_versions.c.component == component)
                    .values(version=len(steps))
                )

    def _version(self, component: str) -> int | None:
        """Return the component's recorded version, or None before any migration ran."""
        with self.read() as conn:
            if not sa.inspect(conn).has_table(_versions.name):
                return None
            return _read_version(conn, component)

    def dispose(self) -> None:
        """Close the pooled connections (none are pooled for SQLite)."""
        if self._engine is not None:
            self._engine.dispose()


_opened: dict[str, Database] = {}
_opened_lock = threading.Lock()


def open_database(target: Database | Path | str) -> Database:
    """Return `target` itself, or the process's one Database for a SQLite file's Path or a URL."""
    if isinstance(target, Database):
        return target
    url = sqlite_url(target) if isinstance(target, Path) else target
    # One per URL, so that the stores sharing a database share its pool of connections.
    with _opened_lock:
        if url not in _opened:
            _opened[url] = Database(url)
        return _opened[url]


def _read_version(conn: Connection, component: str) -> int:
    found = conn.execute(
        sa.select(_versions.c.version).where(_versions.c.component == component)
    ).scalar_one_or_none()
    return int(found or 0)


def _lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), signed=True)


def _sqlite_manual_transactions(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Stop the sqlite3 module from opening transactions itself, so that _sqlite_begin decides
    # how each one begins (SQLAlchemy's documented recipe for SQLite transactions).
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock at BEGIN: with a deferred BEGIN two writers could both read,
    # then one would fail to upgrade its lock ("database is locked") without waiting.
    immediate = conn.get_execution_options().get("optscan_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enable_wal(path: Path) -> None:
    """Switch the file to WAL, retrying while another process holds it."""
    # WAL is a property of the file and persists. When several processes switch the same new
    # file at once, each holds a shared lock and wants an exclusive one; sqlite breaks that
    # deadlock by failing one at once with "database is locked", without its busy handler
    # (measured: a third of 6-process races). So retry here, up to the timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.001
    while True:
        try:
            with closing(
                sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            ) as conn:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    if str(mode).lower() != "wal":
        raise RuntimeError(f"could not switch {path} to WAL journal mode (got {mode!r})")
