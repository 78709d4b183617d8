"""The durable books: shares and cost basis per symbol, and the cash for puts.

They live beside the watchlist in a SQL database (positions.sqlite3 in the instance folder, or
the PostgreSQL database DATABASE_URL names), so they survive Redis being flushed and several
hosts share them. Every value is validated (optscan.core.book) before the transaction, so a
change, or a whole import, either applies or changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optscan.core.book import Book, InvalidPosition, Position, parse_cash, read_positions_csv
from optscan.core.market import Clock, system_clock
from optscan.core.symbols import InvalidSymbol, normalize_symbols
from optscan.store.sql.component import Component

if TYPE_CHECKING:
    from optscan.store.sql.database import Database, Migration

# SQLAlchemy is imported on first use (inside the methods), as the watchlist does: the app
# and `flask scan --help` start without it.

__all__ = ["REFUSED", "Imported", "Positions", "UnknownPosition", "refusal"]


class UnknownPosition(KeyError):
    """Refuse to remove symbols that are not held; `symbols` lists them."""

    def __init__(self, symbols: Iterable[str]):
        self.symbols = list(symbols)
        self.message = f"no position in {', '.join(self.symbols)}"
        super().__init__(self.message)

    def __str__(self) -> str:
        """Return the plain message (KeyError would otherwise show it quoted)."""
        return self.message


# What the positions refuse, changing nothing.
REFUSED = (InvalidPosition, InvalidSymbol, UnknownPosition)


def refusal(exc: Exception) -> str:
    """Return the plain sentence for a refused change (the CLI and the page say the same)."""
    return f"{exc.args[0] if exc.args else exc}. Nothing was changed."


@dataclass(frozen=True)
class Imported:
    """What an import changed."""

    positions: list[Position]  # set from the file
    removed: list[str]  # with replace: the positions the file did not list


class Positions:
    """Keep the positions and the cash durably in a SQL database."""

    def __init__(self, database: Database | Path | str, *, clock: Clock = system_clock):
        """Remember the database; it is opened and migrated on first use."""
        self._db = Component(database, "positions", _migrations)
        self._clock = clock

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat()

    def entries(self) -> list[Position]:
        """Return every position, by symbol."""
        from optscan.store.sql import positions as sql

        return [Position(s, n, b) for s, n, b, _ in self._db.read(sql.all_positions)]

    def cash(self) -> float | None:
        """Return the cash for puts, USD (None: not set)."""
        from optscan.store.sql import positions as sql

        return self._db.read(sql.cash_amount)

    def book(self) -> Book:
        """Return the holdings and the cash, read together."""
        from optscan.store.sql import positions as sql

        def both(conn: Any) -> Book:
            rows = sql.all_positions(conn)
            holdings = {s: Position(s, n, b).holding for s, n, b, _ in rows}
            return Book(holdings, sql.cash_amount(conn))

        return self._db.read(both)

    def set(self, symbol: Any, shares: Any, cost_basis: Any) -> Position:
        """Set one symbol's shares and cost basis (USD per share); return the position."""
        from optscan.store.sql import positions as sql

        position = Position.parse(symbol, shares, cost_basis)
        with self._db.write() as conn:
            sql.upsert(conn, [(position.symbol, position.shares, position.cost_basis)], self._now())
        return position

    def remove(self, symbols: Iterable[str] | str) -> list[str]:
        """Remove positions; if any symbol is not held raise UnknownPosition, removing none."""
        from optscan.store.sql import positions as sql

        batch = normalize_symbols(symbols)
        with self._db.write() as conn:
            held = {s for s, _, _, _ in sql.all_positions(conn)}
            missing = [s for s in batch if s not in held]
            if missing:
                raise UnknownPosition(missing)
            return sql.delete(conn, batch)

    def set_cash(self, raw: Any) -> float | None:
        """Set the cash for puts (USD, 0 or more; None or "" clears it); return it."""
        from optscan.store.sql import positions as sql

        blank = raw is None or (isinstance(raw, str) and not raw.strip())
        amount = None if blank else parse_cash(raw)
        with self._db.write() as conn:
            sql.set_cash(conn, amount, self._now())
        return amount

    def import_csv(self, text: str, *, replace: bool = False) -> Imported:
        """Set every position of a `symbol,shares,cost_basis` CSV; all or nothing.

        With `replace`, positions the file does not list are removed too.
        """
        from optscan.store.sql import positions as sql

        positions = read_positions_csv(text)
        rows = [(p.symbol, p.shares, p.cost_basis) for p in positions]
        with self._db.write() as conn:
            removed = sql.delete_all_but(conn, [p.symbol for p in positions]) if replace else []
            sql.upsert(conn, rows, self._now())
        return Imported(positions, removed)


def _migrations() -> Sequence[Migration]:
    from optscan.store.sql import positions as sql

    return sql.MIGRATIONS
