"""The rules saved as default from the page: what the timer and a bare `flask scan` use.

Kept in a SQL database beside the watchlist (rules.sqlite3 in the instance folder, or the
PostgreSQL database DATABASE_URL names, so several hosts share them). They are laid over the
environment's rules (OPTSCAN_*) field by field; a value saved by an older optscan that no
longer passes the rule validation is skipped with a warning, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from optscan.core.market import Clock, system_clock
from optscan.core.rulefields import FIELDS, InvalidRule, check_rules, parse_value, rule_values
from optscan.core.rules import Rules
from optscan.store.sql.component import Component

if TYPE_CHECKING:
    from optscan.store.sql.database import Database, Migration

# SQLAlchemy is imported on first use (inside the methods), as the watchlist does: the app
# and `flask scan --help` start without it.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Defaults:
    """The rules scans use by default, and whether (and when) they were saved on the page."""

    rules: Rules
    saved_at: str | None  # ISO 8601 UTC; None: the environment's rules, nothing saved


class SavedRules:
    """Keep the default rules saved from the page."""

    def __init__(self, database: Database | Path | str, *, clock: Clock = system_clock):
        """Remember the database; it is opened and migrated on first use."""
        self._db = Component(database, "rules", _migrations)
        self._clock = clock

    def defaults(self, base: Rules) -> Defaults:
        """Return `base` (the environment's rules) with the saved values laid over it."""
        from optscan.store.sql import savedrules as sql

        values, saved_at = self._db.read(sql.load)
        rules = base
        changes = {}
        for name, value in values.items():
            if name not in FIELDS:
                continue  # a rule this optscan no longer has
            try:
                changes[name] = parse_value(FIELDS[name], value)
            except InvalidRule as exc:
                log.warning("saved default rule skipped: %s", exc.text(lambda f: f.name))
        try:
            rules = check_rules(Rules(**{**rule_values(base), **changes}))
        except InvalidRule as exc:
            log.warning("saved default rules skipped: %s", exc.text(lambda f: f.name))
            return Defaults(base, None)
        return Defaults(rules, saved_at)

    def save(self, rules: Rules) -> None:
        """Save every field of `rules` (already validated) as the default."""
        from optscan.store.sql import savedrules as sql

        now = self._clock().astimezone(UTC).isoformat()
        with self._db.write() as conn:
            sql.replace_all(conn, rule_values(check_rules(rules)), now)

    def clear(self) -> None:
        """Forget the saved rules: the environment's apply again."""
        from optscan.store.sql import savedrules as sql

        with self._db.write() as conn:
            sql.clear(conn)


def _migrations() -> Sequence[Migration]:
    from optscan.store.sql import savedrules as sql

    return sql.MIGRATIONS
