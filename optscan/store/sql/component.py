"""A durable store's hold on its database: opened and migrated on first use, reads and writes.

Every durable store (watchlist, positions, saved rules, history) holds one. Importing this
module loads no SQLAlchemy: the database and the store's migrations load on first use, so that
the app and `flask scan --help` start without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from optscan.store.sql.database import Database, Migration

T = TypeVar("T")


class Component:
    """One store's tables in a database: migrated once, then one read or write at a time."""

    def __init__(
        self,
        target: Database | Path | str,
        name: str,
        migrations: Callable[[], Sequence[Migration]],
        *,
        prepare: Callable[[Connection], None] | None = None,
    ):
        """Remember where and what; nothing is opened until the first read or write.

        `migrations` returns the store's schema steps (called once, on opening, so that its
        module and SQLAlchemy load then); `prepare`, if given, runs once after them, in a write.
        """
        self._target = target
        self.name = name  # the schema component, and the name its writers serialise on
        self._migrations = migrations
        self._prepare = prepare
        self._database: Database | None = None
        self._opening = threading.Lock()

    @property
    def database(self) -> Database:
        """Return the database, opened, migrated and prepared on first use."""
        if self._database is None:
            with self._opening:
                if self._database is None:
                    from optscan.store.sql.database import open_database

                    database = open_database(self._target)
                    database.migrate(self.name, self._migrations())
                    if self._prepare is not None:
                        with database.write(self.name) as conn:
                            self._prepare(conn)
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
