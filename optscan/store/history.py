"""The durable scan history: per completed scan and symbol, spot, IVs and matches.

It lives in a SQL database through optscan.store.sql (SQLite in the instance folder by
default, PostgreSQL with DATABASE_URL), opened and migrated on first use. A completed scan is
recorded after it is stored, off the scan's path (jobs/history.py), in one short transaction;
recording the same scan again adds nothing. Rows older than the retention are pruned in small
batches, each its own transaction, so a prune never holds the write lock for long. Its size
is bounded by the retention and by the matches kept per symbol and scan.

Units: IVs FRACTIONS per year; spot USD per share; best_return PERCENT per year; times UTC.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optscan.core.ivrank import IvRank, iv_rank, trading_day, window_start
from optscan.core.market import Clock, system_clock
from optscan.core.match import Match
from optscan.core.models import OK_STATUSES, ScanResult, SymbolReport
from optscan.store.sql.component import Component

if TYPE_CHECKING:
    from optscan.store.sql.database import Database, Migration

__all__ = [
    "DEFAULT_MATCHES_PER_SYMBOL",
    "DEFAULT_RETENTION_DAYS",
    "HistoryStore",
    "Stats",
    "stamp",
]

DEFAULT_RETENTION_DAYS = 400
DEFAULT_MATCHES_PER_SYMBOL = 10
PRUNE_BATCH = 500  # rows per delete transaction


def stamp(at: datetime) -> str:
    """Return `at` as fixed-width ISO 8601 UTC text, which sorts as the time does."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: give an explicit timezone")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Stats:
    """How big the history is."""

    rows: int  # symbol rows (one per scan and symbol)
    matches: int  # match rows kept
    symbols: int
    oldest: datetime | None
    newest: datetime | None
    bytes: int  # on disk: the SQLite file with its WAL, or the PostgreSQL tables and indexes
    retention_days: int
    location: str

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready data."""
        return {
            "rows": self.rows,
            "matches": self.matches,
            "symbols": self.symbols,
            "oldest": self.oldest.isoformat() if self.oldest else None,
            "newest": self.newest.isoformat() if self.newest else None,
            "bytes": self.bytes,
            "retention_days": self.retention_days,
            "location": self.location,
        }


class HistoryStore:
    """Keep the scan history durably in a SQL database, safe for concurrent processes."""

    def __init__(
        self,
        database: Database | Path | str,
        *,
        clock: Clock = system_clock,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        matches_per_symbol: int = DEFAULT_MATCHES_PER_SYMBOL,
        lazy: bool = False,
    ):
        """Open `database` (a Database, a SQLite file's Path or a URL), now or on first use."""
        if retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days}")
        self._clock = clock
        self.retention_days = retention_days
        self.matches_per_symbol = matches_per_symbol
        self._db = Component(database, "history", _migrations)
        if not lazy:
            _ = self.database

    @property
    def database(self) -> Database:
        """Return the database, opened and migrated on first use."""
        return self._db.database

    # -- writing -------------------------------------------------------------------------------

    def record(self, result: ScanResult, scan_id: str) -> int:
        """Record a completed scan's scanned symbols; return how many rows were added.

        The scan's start is the time of its rows, and each row's trading day is its quotes'
        (core/ivrank.py). Recording a scan again adds nothing.
        """
        from optscan.store.sql import history as sql

        if not result.success:
            return 0
        by_symbol: dict[str, list[Match]] = {}
        for match in result.matches:
            by_symbol.setdefault(match["symbol"], []).append(match)
        at = stamp(result.started_at)
        rows, kept = [], {}
        for symbol, report in result.symbols.items():
            if report.status not in OK_STATUSES:
                continue
            found = by_symbol.get(symbol, [])
            day = trading_day(report.as_of or result.started_at)
            rows.append(_row(symbol, result.side, at, day, report, found))
            best = sorted(found, key=lambda m: -(m.get("annualized_return") or 0.0))
            kept[symbol] = [_match_row(m) for m in best[: self.matches_per_symbol]]
        with self._db.write() as conn:
            done = sql.recorded(conn, scan_id)
            fresh = [row for row in rows if row["symbol"] not in done]
            sql.insert(conn, scan_id, fresh, {r["symbol"]: kept[r["symbol"]] for r in fresh})
        return len(fresh)

    def prune(self, batch: int = PRUNE_BATCH) -> int:
        """Delete the rows older than the retention, `batch` at a time; return how many went."""
        from optscan.store.sql import history as sql

        cutoff = stamp(self._clock() - timedelta(days=self.retention_days))
        with self._db.write() as conn:
            sql.delete_days(conn, cutoff)
        removed = 0
        while True:
            # One short transaction per batch: a scan's recording waits for one batch at most.
            with self._db.write() as conn:
                ids = sql.expired_ids(conn, cutoff, batch)
                if ids:
                    sql.delete_rows(conn, ids)
            removed += len(ids)
            if len(ids) < batch:
                return removed

    # -- reading -------------------------------------------------------------------------------

    def daily_iv30(self, symbol: str, start: date, before: date) -> list[float]:
        """Return a symbol's 30-day IV per trading day in [start, before), oldest first."""
        from optscan.store.sql import history as sql

        return self._db.read(lambda conn: sql.daily_iv30(conn, symbol, start, before))

    def latest_rank(self, symbol: str) -> tuple[date, float, IvRank] | None:
        """Return the latest trading day with a 30-day IV, that IV and its rank; None if none."""
        from optscan.store.sql import history as sql

        latest = self._db.read(lambda conn: sql.latest_day(conn, symbol))
        if latest is None:
            return None
        day = date.fromisoformat(latest)
        values = self.daily_iv30(symbol, window_start(day), day + timedelta(days=1))
        return day, values[-1], iv_rank(values[-1], values[:-1])

    def points(
        self,
        symbol: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Return a symbol's recorded scans (oldest first unless asked), as JSON-ready points."""
        from optscan.store.sql import history as sql

        after = stamp(since) if since is not None else None
        rows = self._db.read(lambda conn: sql.points(conn, symbol, after, limit, newest_first))
        return [_point(row) for row in rows]

    def matches_of(self, row_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Return the matches kept for the given rows (point ids), best return first."""
        from optscan.store.sql import history as sql

        return self._db.read(lambda conn: sql.kept_matches(conn, row_ids))

    def symbols(self) -> list[tuple[str, int, datetime]]:
        """Return (symbol, recorded scans, latest scan time) of every symbol, by symbol."""
        from optscan.store.sql import history as sql

        return [
            (symbol, count, datetime.fromisoformat(latest))
            for symbol, count, latest in self._db.read(sql.symbol_list)
        ]

    def stats(self) -> Stats:
        """Return the history's row counts, time span and size on disk."""
        from optscan.store.sql import history as sql

        database = self.database
        with database.read() as conn:
            found = sql.counts(conn)
            size = sql.postgres_bytes(conn) if database.dialect == "postgresql" else 0
        if database.path is not None:
            size = sum(
                p.stat().st_size
                for p in (database.path, Path(f"{database.path}-wal"))
                if p.exists()
            )
        return Stats(
            rows=found["rows"],
            matches=found["matches"],
            symbols=found["symbols"],
            oldest=_time(found["oldest"]),
            newest=_time(found["newest"]),
            bytes=size,
            retention_days=self.retention_days,
            location=repr(database),
        )


def _migrations() -> Sequence[Migration]:
    # Imported here: SQLAlchemy loads only once the history is used.
    from optscan.store.sql import history as sql

    return sql.MIGRATIONS


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _row(
    symbol: str, side: str, at: str, day: date, report: SymbolReport, found: list[Match]
) -> dict[str, Any]:
    """Return one symbol's row of a scan."""
    returns = [m["annualized_return"] for m in found if m.get("annualized_return") is not None]
    quoted = report.as_of
    return {
        "side": side,
        "symbol": symbol,
        "scanned_at": at,
        "trading_day": day.isoformat(),
        "spot": report.price,
        "quote_at": stamp(datetime.fromisoformat(quoted)) if quoted else None,
        "atm_iv": json.dumps(report.atm_iv, separators=(",", ":"), sort_keys=True),
        "iv30": report.iv30,
        "vendor_iv30": report.vendor_iv30,
        "matches": report.matches,
        "best_return": max(returns) if returns else None,
    }


def _match_row(match: Match) -> dict[str, Any]:
    """Return the columns kept of one match."""
    from optscan.store.sql import history as sql

    row: dict[str, Any] = {name: match.get(name) for name in sql.MATCH_COLUMNS}
    row["flags"] = " ".join(match.get("flags") or [])
    return row


def _point(row: dict[str, Any]) -> dict[str, Any]:
    """Return a stored row as a JSON-ready point (times ISO 8601 in UTC)."""
    point = dict(row)
    point["atm_iv"] = json.loads(row["atm_iv"] or "{}")
    for name in ("scanned_at", "quote_at"):
        if point[name]:
            point[name] = datetime.fromisoformat(point[name]).isoformat()
    return point
