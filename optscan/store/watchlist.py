"""The durable watchlist: symbols with an active flag and a note, in one sqlite3 file.

Several processes (gunicorn workers, a scanner) may edit the same file at once, so:
- WAL journal, so readers never block the single writer and a writer never blocks readers;
- a busy timeout, so a writer waits for the lock instead of failing with "database is locked";
- one short transaction per operation, opened with BEGIN IMMEDIATE so a read-modify-write
  holds the write lock from its first read and two writers can never interleave inside it;
- validation of every symbol and note before the transaction: a batch either applies whole or
  changes nothing.
A connection is opened per operation, which keeps the object safe to share between threads
and across fork (sqlite3 connections are neither).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from optscan.core.market import Clock, system_clock
from optscan.core.symbols import InvalidSymbol, normalize_symbol, normalize_symbols

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
BUSY_TIMEOUT_SECONDS = 10.0
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS symbols (
    symbol   TEXT PRIMARY KEY,
    active   INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    note     TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL  -- ISO 8601, UTC
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


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
    """Store the watchlist durably in the sqlite3 file at `path`, safe for concurrent processes."""

    def __init__(
        self,
        path: Path,
        *,
        seed: Iterable[str] = DEFAULT_SYMBOLS,
        clock: Clock = system_clock,
    ):
        """Open (creating if needed) the store at `path`; seed it once, on first creation only."""
        self.path = Path(path)
        self._clock = clock
        seed_symbols = normalize_symbols(seed)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._enable_wal()
        with self._transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            seeded = conn.execute("SELECT 1 FROM meta WHERE key = 'seeded_at'").fetchone()
            if seeded is None:
                now = self._now()
                conn.executemany(
                    "INSERT OR IGNORE INTO symbols (symbol, active, note, added_at) "
                    "VALUES (?, 1, '', ?)",
                    [(symbol, now) for symbol in seed_symbols],
                )
                conn.execute("INSERT INTO meta (key, value) VALUES ('seeded_at', ?)", (now,))

    def _enable_wal(self) -> None:
        """Switch the file to WAL, retrying while another process holds it."""
        # WAL is a property of the file and persists. When several processes switch the same
        # new file at once, each holds a shared lock and wants an exclusive one; sqlite breaks
        # that deadlock by failing one at once with "database is locked", without its busy
        # handler (measured: a third of 6-process races). So retry here, up to the timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        delay = 0.001
        while True:
            try:
                with closing(self._connect()) as conn:
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
            raise RuntimeError(f"could not switch {self.path} to WAL journal mode (got {mode!r})")

    def _connect(self) -> sqlite3.Connection:
        """Open a connection in autocommit mode; transactions are begun explicitly."""
        # `timeout` is sqlite's busy timeout: wait that long for another writer's lock.
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside BEGIN IMMEDIATE; commit on success, roll back on error."""
        with closing(self._connect()) as conn, _immediate(conn):
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection for a single consistent read."""
        with closing(self._connect()) as conn:
            yield conn

    def _now(self) -> str:
        """Return the injected clock's time as ISO 8601 in UTC."""
        return self._clock().astimezone(UTC).isoformat()

    def entries(self) -> list[Entry]:
        """Return every entry, sorted by symbol."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT symbol, active, note, added_at FROM symbols ORDER BY symbol"
            ).fetchall()
        return [
            Entry(
                symbol=symbol,
                active=bool(active),
                note=note,
                added_at=datetime.fromisoformat(added_at),
            )
            for symbol, active, note, added_at in rows
        ]

    def active_symbols(self) -> list[str]:
        """Return the active symbols, sorted."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT symbol FROM symbols WHERE active = 1 ORDER BY symbol"
            ).fetchall()
        return [symbol for (symbol,) in rows]

    def add(self, symbols: Iterable[str], note: str = "") -> list[str]:
        """Add symbols (active, with `note`); return the newly added, leaving existing ones."""
        batch = normalize_symbols(symbols)
        clean_note = normalize_note(note)
        added: list[str] = []
        with self._transaction() as conn:
            now = self._now()
            for symbol in batch:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO symbols (symbol, active, note, added_at) "
                    "VALUES (?, 1, ?, ?)",
                    (symbol, clean_note, now),
                )
                if cursor.rowcount == 1:
                    added.append(symbol)
        return added

    def remove(self, symbols: Iterable[str] | str) -> list[str]:
        """Remove symbols and return them; if any is unknown raise UnknownSymbol, removing none."""
        batch = normalize_symbols(symbols)
        with self._transaction() as conn:
            _require_known(conn, batch)
            conn.executemany("DELETE FROM symbols WHERE symbol = ?", [(s,) for s in batch])
        return batch

    def set_active(self, symbols: Iterable[str] | str, active: bool) -> list[str]:
        """Set the active flag; return the symbols whose flag changed. Unknown ones change none."""
        batch = normalize_symbols(symbols)
        flag = 1 if active else 0
        changed: list[str] = []
        with self._transaction() as conn:
            _require_known(conn, batch)
            for symbol in batch:
                cursor = conn.execute(
                    "UPDATE symbols SET active = ? WHERE symbol = ? AND active != ?",
                    (flag, symbol, flag),
                )
                if cursor.rowcount == 1:
                    changed.append(symbol)
        return changed

    def set_note(self, symbol: str, note: str) -> None:
        """Replace one symbol's note (empty clears it); raise UnknownSymbol if it is not listed."""
        clean_symbol = normalize_symbol(symbol)
        clean_note = normalize_note(note)
        with self._transaction() as conn:
            _require_known(conn, [clean_symbol])
            conn.execute("UPDATE symbols SET note = ? WHERE symbol = ?", (clean_note, clean_symbol))


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a BEGIN IMMEDIATE transaction, committing or rolling back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _require_known(conn: sqlite3.Connection, batch: list[str]) -> None:
    """Raise UnknownSymbol listing every symbol of `batch` not on the watchlist."""
    unknown = [
        symbol
        for symbol in batch
        if conn.execute("SELECT 1 FROM symbols WHERE symbol = ?", (symbol,)).fetchone() is None
    ]
    if unknown:
        raise UnknownSymbol(unknown)
