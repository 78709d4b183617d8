"""The results board: per side, each symbol's last good rows, kept in Redis until replaced.

A scan writes each symbol as it finishes: a symbol scanned successfully replaces that symbol's
group on the board (its rows, spot, quote time and the rules they passed); a symbol that failed
leaves its previous group in place and records the failure beside it. Nothing is ever deleted
by a failure, and a scan of a few symbols updates just those. A scan's summary (times, counts,
per-symbol statuses, no rows) is kept as the last completed scan and as the last attempt.

Keys, under the configured prefix: ``board:<side>`` (hash: symbol -> group JSON),
``board:<side>:failures`` (hash: symbol -> failure JSON), ``board:<side>:contracts`` (hash:
symbol -> JSON list of the contract keys on the board, which tell the next scan's new rows),
``scan:last:<side>`` and
``scan:attempt:<side>`` (summary JSON). Nothing expires: old results show as stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import redis

from optscan.core.match import SIDES
from optscan.core.newness import contract_keys

Group = dict[str, Any]


def _dumps(value: Any) -> bytes:
    # msgspec: ~8x faster than json on a symbol's rows; a missing number (NaN) becomes null.
    return msgspec.json.encode(value)


class ResultStore:
    """Keep each symbol's last good rows per side, and the last scan summaries."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix

    def _key(self, kind: str, side: str) -> str:
        return f"{self.prefix}scan:{kind}:{side}"

    def board_key(self, side: str) -> str:
        """Return the key of a side's board (symbol -> group)."""
        return f"{self.prefix}board:{side}"

    def failures_key(self, side: str) -> str:
        """Return the key of a side's latest failures (symbol -> failure)."""
        return f"{self.prefix}board:{side}:failures"

    def contracts_key(self, side: str) -> str:
        """Return the key of a side's contract sets (symbol -> contract keys)."""
        return f"{self.prefix}board:{side}:contracts"

    # -- per symbol, as a scan goes ---------------------------------------------------------

    def save_group(self, group: Group) -> int:
        """Replace one symbol's group on its side's board; return the bytes written."""
        side, symbol = group["side"], group["symbol"]
        body = _dumps(group)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.board_key(side), symbol, body)
            pipe.hset(self.contracts_key(side), symbol, _dumps(contract_keys(group["matches"])))
            pipe.hdel(self.failures_key(side), symbol)
            pipe.execute()
        return len(body)

    def contracts(self, side: str, symbol: str) -> list[str] | None:
        """Return the contract keys of a symbol's rows on the board; None before its first."""
        raw = self.client.hget(self.contracts_key(side), symbol)
        return msgspec.json.decode(raw) if raw else None

    def save_failure(self, side: str, symbol: str, failure: dict[str, Any]) -> bool:
        """Record that the latest scan of a symbol failed; return whether earlier rows stay."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.failures_key(side), symbol, _dumps(failure))
            pipe.hexists(self.board_key(side), symbol)
            return bool(pipe.execute()[1])

    def board(self, side: str, scan_id: str | None = None) -> dict[str, Group]:
        """Return a side's groups by symbol (only those of one scan when scan_id is given)."""
        raw = self.client.hgetall(self.board_key(side))
        groups = {_text(k): msgspec.json.decode(v) for k, v in raw.items()}
        if scan_id is not None:
            groups = {s: g for s, g in groups.items() if g.get("scan_id") == scan_id}
        return dict(sorted(groups.items()))

    def group(self, side: str, symbol: str) -> Group | None:
        """Return one symbol's group on a side's board, or None."""
        raw = self.client.hget(self.board_key(side), symbol)
        return msgspec.json.decode(raw) if raw else None

    def failures(self, side: str) -> dict[str, dict[str, Any]]:
        """Return a side's latest failures by symbol."""
        raw = self.client.hgetall(self.failures_key(side))
        return {_text(k): msgspec.json.decode(v) for k, v in sorted(raw.items())}

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop symbols from every board (they left the watchlist)."""
        self.forget_side(SIDES, symbols)

    def forget_side(self, sides: Iterable[str] | str, symbols: Iterable[str]) -> None:
        """Drop symbols' rows, failures and contract sets from one side's board (or several)."""
        names = list(symbols)
        if not names:
            return
        with self.client.pipeline(transaction=True) as pipe:
            for side in [sides] if isinstance(sides, str) else sides:
                pipe.hdel(self.board_key(side), *names)
                pipe.hdel(self.failures_key(side), *names)
                pipe.hdel(self.contracts_key(side), *names)
            pipe.execute()

    # -- per scan ---------------------------------------------------------------------------

    def save_completed(self, summary: dict[str, Any]) -> None:
        """Store a completed scan's summary as the last good one and as the last attempt."""
        body = _dumps(summary)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key("last", summary["side"]), body)
            pipe.set(self._key("attempt", summary["side"]), body)
            pipe.execute()

    def save_attempt(self, summary: dict[str, Any]) -> None:
        """Store a failed or interrupted scan's summary without touching the last good one."""
        self.client.set(self._key("attempt", summary["side"]), _dumps(summary))

    def last(self, side: str) -> dict[str, Any] | None:
        """Return the summary of the last completed scan of a side, or None."""
        raw = self.client.get(self._key("last", side))
        return msgspec.json.decode(raw) if raw else None

    def last_attempt(self, side: str) -> dict[str, Any] | None:
        """Return the summary of the most recent scan of a side, good or not, or None."""
        raw = self.client.get(self._key("attempt", side))
        return msgspec.json.decode(raw) if raw else None

    def results(self, side: str) -> dict[str, Any] | None:
        """Return the board as one document (last scan, groups, every row); None when empty."""
        groups = self.board(side)
        last = self.last(side)
        if not groups and last is None:
            return None
        return {
            "side": side,
            "last_scan": last,
            "failures": self.failures(side),
            "symbols": {
                s: {k: v for k, v in g.items() if k != "matches"} for s, g in groups.items()
            },
            "matches": [m for g in groups.values() for m in g.get("matches", [])],
        }


def _without_rows(group: Group) -> Group:
    return {k: v for k, v in group.items() if k != "matches"}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
