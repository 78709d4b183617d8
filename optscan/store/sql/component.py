"""A durable store's hold on its database: opened and migrated on first use, reads and writes.

The watchlist predates it and opens its database itself; the stores after it (positions, saved
rules) share this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Connection

from optscan.store.sql.database import Database, Migration, open_database

T = TypeVar("T")


class Component:
    """One store's tables in a database: migrated once, then one read or write at a time."""

    def __init__(self, target: Database | Path | str, name: str, migrations: Sequence[Migration]):
        """Remember where and what; nothing is opened until the first read or write."""
        self._target = target
        self.name = name  # the schema component, and the name its writers serialise on
        self._migrations = migrations
        self._database: Database | None = None
        self._opening = threading.Lock()

    @property
    def database(self) -> Database:
        """Return the database, opened and migrated on first use."""
        if self._database is None:
            with self._opening:
                if self._database is None:
                    database = open_database(self._target)
                    database.migrate(self.name, self._migrations)
                    self._database = database
        return self._database

    def read(self, query: Callable[[Connection], T]) -> T:
        """Return what `query` reads in one consistent read."""
        with self.database.read() as conn:
            return query(conn)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Yield a connection inside one write transaction, committed when the block ends."""
        with self.database.write(self.name) as conn:
            yield conn
