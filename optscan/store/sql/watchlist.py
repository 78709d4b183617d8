"""The watchlist's tables, their migrations and its statements (validation is the caller's).

Schema versions (a step is never edited once released; a change is a new step):
1. `watchlist` (symbol, active 0/1, note, added_at ISO 8601 UTC text) and `watchlist_meta`
   (key, value; `seeded_at` once the default symbols were added). A file made by the sqlite3
   code before versioning holds the same tables as `symbols` and `meta` (with
   `schema_version` = 1 in `meta`): they are renamed in place, rows untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from optscan.store.sql.database import Migration

_metadata = sa.MetaData()
symbols = sa.Table(
    "watchlist",
    _metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("active", sa.Integer, nullable=False),  # 0 or 1, as in the first files
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("added_at", sa.Text, nullable=False),  # ISO 8601, UTC
)
meta = sa.Table(
    "watchlist_meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Frozen DDL, valid in SQLite and PostgreSQL alike (the same columns the first files have).
_V1_TABLES = (
    """CREATE TABLE watchlist (
        symbol   TEXT PRIMARY KEY,
        active   INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        note     TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL
    )""",
    """CREATE TABLE watchlist_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
)


def _v1_tables(conn: Connection) -> None:
    """Create the tables, or adopt those of an unversioned file by renaming them."""
    inspector = sa.inspect(conn)
    legacy = inspector.has_table("symbols") and inspector.has_table("meta")
    if legacy:
        legacy = (
            conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
            == "1"
        )
    if not legacy:
        for statement in _V1_TABLES:
            conn.execute(sa.text(statement))
        return
    conn.execute(sa.text("ALTER TABLE symbols RENAME TO watchlist"))
    conn.execute(sa.text("ALTER TABLE meta RENAME TO watchlist_meta"))
    # The version is kept in optscan_schema now; one record of it is enough.
    conn.execute(sa.text("DELETE FROM watchlist_meta WHERE key = 'schema_version'"))


MIGRATIONS: tuple[Migration, ...] = (_v1_tables,)


def seed_once(conn: Connection, batch: Sequence[str], now: str) -> None:
    """Add `batch` (active) unless the watchlist was seeded before, even if emptied since."""
    seeded = conn.execute(sa.select(meta.c.value).where(meta.c.key == "seeded_at")).first()
    if seeded is not None:
        return
    insert(conn, batch, "", now)
    conn.execute(meta.insert().values(key="seeded_at", value=now))


def entries(conn: Connection) -> list[tuple[str, bool, str, str]]:
    """Return (symbol, active, note, added_at) of every row, by symbol."""
    rows = conn.execute(
        sa.select(symbols.c.symbol, symbols.c.active, symbols.c.note, symbols.c.added_at).order_by(
            symbols.c.symbol
        )
    )
    return [(symbol, bool(active), note, added_at) for symbol, active, note, added_at in rows]


def active_symbols(conn: Connection) -> list[str]:
    """Return the active symbols, sorted."""
    query = sa.select(symbols.c.symbol).where(symbols.c.active == 1).order_by(symbols.c.symbol)
    return list(conn.execute(query).scalars())


def unknown(conn: Connection, batch: Sequence[str]) -> list[str]:
    """Return the symbols of `batch` that are not on the watchlist, in batch order."""
    query = sa.select(symbols.c.symbol).where(symbols.c.symbol.in_(batch))
    found = set(conn.execute(query).scalars())
    return [symbol for symbol in batch if symbol not in found]


def insert(conn: Connection, batch: Sequence[str], note: str, now: str) -> list[str]:
    """Add the symbols of `batch` not yet listed (active, with `note`); return those added."""
    new = unknown(conn, batch)
    if new:
        conn.execute(
            symbols.insert(),
            [{"symbol": s, "active": 1, "note": note, "added_at": now} for s in new],
        )
    return new


def delete(conn: Connection, batch: Sequence[str]) -> None:
    """Remove the symbols of `batch`."""
    conn.execute(symbols.delete().where(symbols.c.symbol.in_(batch)))


def set_active(conn: Connection, batch: Sequence[str], active: bool) -> list[str]:
    """Set the flag of the symbols of `batch`; return those whose flag changed, in order."""
    flag = 1 if active else 0
    query = sa.select(symbols.c.symbol).where(symbols.c.symbol.in_(batch), symbols.c.active != flag)
    differ = set(conn.execute(query).scalars())
    changed = [symbol for symbol in batch if symbol in differ]
    if changed:
        conn.execute(symbols.update().where(symbols.c.symbol.in_(changed)).values(active=flag))
    return changed


def set_note(conn: Connection, symbol: str, note: str) -> None:
    """Replace one symbol's note."""
    conn.execute(symbols.update().where(symbols.c.symbol == symbol).values(note=note))
