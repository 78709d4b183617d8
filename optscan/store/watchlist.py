"""The durable watchlist: symbols with an active flag and a note, shared by every process.

It lives in a SQL database through optscan.store.sql (SQLite in the instance folder by
default; PostgreSQL when several hosts share one watchlist), opened and migrated when the
Watchlist is made, or on its first use when it is made lazy. Every symbol and note is validated
before the transaction, so a batch either applies whole or changes nothing; each change is one
short write transaction that holds the watchlist's write lock from its first read, so two
writers never interleave inside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from optscan.core.market import Clock, system_clock
from optscan.core.symbols import InvalidSymbol, normalize_symbol, normalize_symbols
from optscan.store.sql.component import Component

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from optscan.store.sql.database import Database, Migration

__all__ = [
    "DEFAULT_SYMBOLS",
    "REFUSED",
    "Entry",
    "InvalidNote",
    "InvalidSymbol",
    "UnknownSymbol",
    "Watchlist",
    "normalize_note",
    "normalize_symbols",
    "refusal",
]

DEFAULT_SYMBOLS = (
    "AAPL",
    "ADBE",
    "AMZN",
    "ANET",
    "ASML",
    "AVGO",
    "CRM",
    "CRWD",
    "DDOG",
    "DUOL",
    "GOOGL",
    "JPM",
    "MA",
    "META",
    "MSFT",
    "NFLX",
    "NOW",
    "NVDA",
    "PANW",
    "PLTR",
    "PYPL",
    "SHOP",
    "SPGI",
    "SPOT",
    "UBER",
    "V",
)

NOTE_MAX_CHARS = 200


class UnknownSymbol(KeyError):
    """Refuse symbols that are not on the watchlist; `symbols` lists them."""

    def __init__(self, symbols: Iterable[str]):
        self.symbols = list(symbols)
        plural = "s" if len(self.symbols) != 1 else ""
        self.message = f"not on the watchlist: symbol{plural} {', '.join(self.symbols)}"
        super().__init__(self.message)

    def __str__(self) -> str:
        """Return the plain message (KeyError would otherwise show it quoted)."""
        return self.message


class InvalidNote(ValueError):
    """Refuse a note that is too long or contains control characters."""


# What the watchlist refuses, changing nothing.
REFUSED = (InvalidSymbol, UnknownSymbol, InvalidNote)


def refusal(exc: Exception) -> str:
    """Return the plain sentence for a refused change (the CLI and the page say the same)."""
    return f"{exc.args[0] if exc.args else exc}. Nothing was changed."


def normalize_note(note: str) -> str:
    """Return `note` stripped, or raise InvalidNote if too long or not a single line of text."""
    if not isinstance(note, str):
        raise InvalidNote(f"a note must be text, got {type(note).__name__}")
    stripped = note.strip()
    if len(stripped) > NOTE_MAX_CHARS:
        raise InvalidNote(
            f"note is {len(stripped)} characters; the limit is {NOTE_MAX_CHARS} characters"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise InvalidNote("a note must be one line without control characters")
    return stripped


@dataclass(frozen=True)
class Entry:
    """One watchlist row."""

    symbol: str
    active: bool
    note: str
    added_at: datetime  # UTC, timezone-aware


class Watchlist:
    """Store the watchlist durably in a SQL database, safe for concurrent processes and hosts."""

    def __init__(
        self,
        database: Database | Path | str,
        *,
        seed: Iterable[str] = DEFAULT_SYMBOLS,
        clock: Clock = system_clock,
        lazy: bool = False,
    ):
        """Open `database` (a Database, a SQLite file's Path or a URL); seed it once, ever.

        Opening creates and migrates the tables and adds the seed the first time. With `lazy`
        that waits for the first use (after the seed is validated, which is always now).
        """
        self._seed = normalize_symbols(seed)
        self._clock = clock
        self._db = Component(database, "watchlist", _migrations, prepare=self._seed_once)
        if not lazy:
            _ = self.database

    @property
    def database(self) -> Database:
        """Return the database, opened, migrated and seeded on first use."""
        return self._db.database

    def _seed_once(self, conn: Connection) -> None:
        from optscan.store.sql import watchlist as sql

        sql.seed_once(conn, self._seed, self._now())

    def _now(self) -> str:
        """Return the injected clock's time as ISO 8601 in UTC."""
        return self._clock().astimezone(UTC).isoformat()

    def entries(self) -> list[Entry]:
        """Return every entry, sorted by symbol."""
        from optscan.store.sql import watchlist as sql

        return [
            Entry(symbol, active=active, note=note, added_at=datetime.fromisoformat(added_at))
            for symbol, active, note, added_at in self._db.read(sql.entries)
        ]

    def active_symbols(self) -> list[str]:
        """Return the active symbols, sorted."""
        from optscan.store.sql import watchlist as sql

        return self._db.read(sql.active_symbols)

    def add(self, symbols: Iterable[str], note: str = "") -> list[str]:
        """Add symbols (active, with `note`); return the newly added, leaving existing ones."""
        from optscan.store.sql import watchlist as sql

        batch = normalize_symbols(symbols)
        clean_note = normalize_note(note)
        with self._db.write() as conn:
            return sql.insert(conn, batch, clean_note, self._now())

    def remove(self, symbols: Iterable[str] | str) -> list[str]:
        """Remove symbols and return them; if any is unknown raise UnknownSymbol, removing none."""
        from optscan.store.sql import watchlist as sql

        batch = normalize_symbols(symbols)
        with self._db.write() as conn:
            _require_known(conn, batch)
            sql.delete(conn, batch)
        return batch

    def set_active(self, symbols: Iterable[str] | str, active: bool) -> list[str]:
        """Set the active flag; return the symbols whose flag changed. Unknown ones change none."""
        from optscan.store.sql import watchlist as sql

        batch = normalize_symbols(symbols)
        with self._db.write() as conn:
            _require_known(conn, batch)
            return sql.set_active(conn, batch, active)

    def set_note(self, symbol: str, note: str) -> None:
        """Replace one symbol's note (empty clears it); raise UnknownSymbol if it is not listed."""
        from optscan.store.sql import watchlist as sql

        clean_symbol = normalize_symbol(symbol)
        clean_note = normalize_note(note)
        with self._db.write() as conn:
            _require_known(conn, [clean_symbol])
            sql.set_note(conn, clean_symbol, clean_note)


def _migrations() -> Sequence[Migration]:
    # Imported here: SQLAlchemy loads only once the watchlist is used.
    from optscan.store.sql import watchlist as sql

    return sql.MIGRATIONS


def _require_known(conn: Connection, batch: list[str]) -> None:
    """Raise UnknownSymbol listing every symbol of `batch` not on the watchlist."""
    from optscan.store.sql import watchlist as sql

    missing = sql.unknown(conn, batch)
    if missing:
        raise UnknownSymbol(missing)
