"""The positions' tables, their migrations and statements (validation is the caller's).

Schema versions (a step is never edited once released; a change is a new step):
1. `positions` (symbol, shares, cost_basis USD per share, updated_at ISO 8601 UTC) and
   `positions_cash` (one row, id 1: amount USD or NULL when unset, updated_at).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from optscan.store.sql.database import Migration

_metadata = sa.MetaData()
positions = sa.Table(
    "positions",
    _metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("shares", sa.BigInteger, nullable=False),
    sa.Column("cost_basis", sa.Double, nullable=False),  # USD per share
    sa.Column("updated_at", sa.Text, nullable=False),  # ISO 8601, UTC
)
cash = sa.Table(
    "positions_cash",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("amount", sa.Double, nullable=True),  # USD; NULL: not set
    sa.Column("updated_at", sa.Text, nullable=False),
)

# Frozen DDL, valid in SQLite and PostgreSQL alike.
_V1_TABLES = (
    """CREATE TABLE positions (
        symbol     TEXT PRIMARY KEY,
        shares     BIGINT NOT NULL CHECK (shares >= 0),
        cost_basis DOUBLE PRECISION NOT NULL CHECK (cost_basis > 0),
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE positions_cash (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        amount     DOUBLE PRECISION CHECK (amount >= 0),
        updated_at TEXT NOT NULL
    )""",
)


def _v1_tables(conn: Connection) -> None:
    for statement in _V1_TABLES:
        conn.execute(sa.text(statement))


MIGRATIONS: tuple[Migration, ...] = (_v1_tables,)


def all_positions(conn: Connection) -> list[tuple[str, int, float, str]]:
    """Return (symbol, shares, cost_basis, updated_at) of every position, by symbol."""
    query = sa.select(
        positions.c.symbol, positions.c.shares, positions.c.cost_basis, positions.c.updated_at
    ).order_by(positions.c.symbol)
    return [(s, int(n), float(b), at) for s, n, b, at in conn.execute(query)]


def cash_amount(conn: Connection) -> float | None:
    """Return the cash, or None when it was never set or was cleared."""
    found = conn.execute(sa.select(cash.c.amount).where(cash.c.id == 1)).scalar_one_or_none()
    return None if found is None else float(found)


def upsert(conn: Connection, rows: Sequence[tuple[str, int, float]], now: str) -> None:
    """Set each (symbol, shares, cost_basis), replacing what a symbol had."""
    symbols = [symbol for symbol, _, _ in rows]
    if not symbols:
        return
    conn.execute(positions.delete().where(positions.c.symbol.in_(symbols)))
    conn.execute(
        positions.insert(),
        [{"symbol": s, "shares": n, "cost_basis": b, "updated_at": now} for s, n, b in rows],
    )


def delete(conn: Connection, symbols: Sequence[str]) -> list[str]:
    """Remove the positions of `symbols`; return those that existed, in order."""
    query = sa.select(positions.c.symbol).where(positions.c.symbol.in_(symbols))
    found = set(conn.execute(query).scalars())
    conn.execute(positions.delete().where(positions.c.symbol.in_(symbols)))
    return [symbol for symbol in symbols if symbol in found]


def delete_all_but(conn: Connection, keep: Sequence[str]) -> list[str]:
    """Remove every position not in `keep`; return those removed, by symbol."""
    query = sa.select(positions.c.symbol).where(positions.c.symbol.not_in(keep))
    gone = sorted(conn.execute(query).scalars())
    if gone:
        conn.execute(positions.delete().where(positions.c.symbol.in_(gone)))
    return gone


def set_cash(conn: Connection, amount: float | None, now: str) -> None:
    """Set the cash (None clears it)."""
    conn.execute(cash.delete().where(cash.c.id == 1))
    conn.execute(cash.insert().values(id=1, amount=amount, updated_at=now))
