"""The saved default rules' table, its migrations and statements (validation is the caller's).

Schema versions (a step is never edited once released; a change is a new step):
1. `saved_rules` (name: a Rules attribute, value: its JSON, saved_at ISO 8601 UTC): one row per
   rule, so a rule added later is simply absent (its default applies) and one removed is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from optscan.store.sql.database import Migration

saved = sa.Table(
    "saved_rules",
    sa.MetaData(),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
    sa.Column("saved_at", sa.Text, nullable=False),  # ISO 8601, UTC
)

_V1_TABLE = """CREATE TABLE saved_rules (
    name     TEXT PRIMARY KEY,
    value    TEXT NOT NULL,
    saved_at TEXT NOT NULL
)"""


def _v1_table(conn: Connection) -> None:
    conn.execute(sa.text(_V1_TABLE))


MIGRATIONS: tuple[Migration, ...] = (_v1_table,)


def load(conn: Connection) -> tuple[dict[str, Any], str | None]:
    """Return the saved values by name and when they were saved (None: nothing saved)."""
    rows = conn.execute(sa.select(saved.c.name, saved.c.value, saved.c.saved_at)).all()
    values = {name: json.loads(value) for name, value, _ in rows}
    return values, max((at for _, _, at in rows), default=None)


def replace_all(conn: Connection, values: Mapping[str, Any], now: str) -> None:
    """Replace every saved value with `values`."""
    conn.execute(saved.delete())
    if values:
        conn.execute(
            saved.insert(),
            [{"name": k, "value": json.dumps(v), "saved_at": now} for k, v in values.items()],
        )


def clear(conn: Connection) -> None:
    """Forget every saved value."""
    conn.execute(saved.delete())
