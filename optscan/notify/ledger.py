"""Which contracts were alerted and when, and how the last alert went, kept in Redis.

Keys, under the configured prefix: ``notify:sent`` (sorted set: contract key -> Unix time of
its alert; members older than the repeat window are pruned whenever contracts are claimed),
``notify:last`` (JSON: the latest delivery, sent or failed) and ``notify:last_sent`` (JSON: the
latest delivery that went out).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis


class AlertLedger:
    """Claim contracts for an alert, give them back when it fails, and record outcomes."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.sent_key = f"{prefix}notify:sent"
        self.last_key = f"{prefix}notify:last"
        self.last_sent_key = f"{prefix}notify:last_sent"

    def claim(self, contracts: Iterable[str], now: datetime, window_hours: float) -> list[str]:
        """Return the contracts not alerted within the window, marked alerted at `now`.

        Pruning and claiming run in one transaction, so two deliveries at once never both
        claim a contract.
        """
        wanted = list(dict.fromkeys(contracts))
        stamp = now.timestamp()
        with self.client.pipeline(transaction=True) as pipe:
            # Members alerted at or before the window's start are due again: drop them.
            pipe.zremrangebyscore(self.sent_key, "-inf", stamp - window_hours * 3600)
            for contract in wanted:
                pipe.zadd(self.sent_key, {contract: stamp}, nx=True)
            added = pipe.execute()[1:]
        return [contract for contract, fresh in zip(wanted, added, strict=True) if fresh]

    def release(self, contracts: Iterable[str]) -> None:
        """Forget that contracts were alerted (their alert failed): the next scan tries again."""
        names = list(contracts)
        if names:
            self.client.zrem(self.sent_key, *names)

    def alerted(self) -> dict[str, float]:
        """Return every contract still remembered, with the Unix time of its alert."""
        return {
            _text(member): score
            for member, score in self.client.zrange(self.sent_key, 0, -1, withscores=True)
        }

    def record(self, outcome: dict[str, Any]) -> None:
        """Keep a delivery's outcome ({ok, at, count, side, reason}) as the latest."""
        body = json.dumps(outcome, separators=(",", ":"))
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.last_key, body)
            if outcome.get("ok"):
                pipe.set(self.last_sent_key, body)
            pipe.execute()

    def last(self) -> dict[str, Any] | None:
        """Return the latest delivery's outcome, or None."""
        raw = self.client.get(self.last_key)
        return json.loads(raw) if raw else None

    def last_sent(self) -> dict[str, Any] | None:
        """Return the latest delivery that went out, or None."""
        raw = self.client.get(self.last_sent_key)
        return json.loads(raw) if raw else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
