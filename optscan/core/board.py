"""Write each finished symbol of a scan to the results board, as the scan goes (best effort)."""

from __future__ import annotations

import logging
from typing import Any

import redis

from optscan.core.book import NOT_HELD
from optscan.core.market import Clock
from optscan.core.match import Match, Side
from optscan.core.models import OK_STATUSES, PENDING, SymbolReport
from optscan.core.newness import mark_new
from optscan.core.rules import Rules
from optscan.store.results import ResultStore

log = logging.getLogger(__name__)


def head_facts(report: SymbolReport) -> dict[str, Any]:
    """Return what a symbol's head line shows, from its report (the board and live events)."""
    return {
        "spot": report.price,
        "as_of": report.as_of,
        "near_iv": report.near_iv,
        "earnings_date": report.earnings_date,
        "shares": report.shares,
        "cost_basis": report.cost_basis,
    }


class Board:
    """Write each finished symbol to the results board as the scan goes (best effort)."""

    def __init__(
        self,
        store: ResultStore | None,
        clock: Clock,
        side: Side,
        rules: Rules,
        trigger: str,
        scan_id: str | None,
        *,
        one_off: bool = False,
    ):
        self.store = store
        self.clock = clock
        self.side = side
        self.rules = rules.describe(side)
        self.top = rules.top_n
        self.one_off = one_off
        self.trigger = trigger
        self.scan_id = scan_id
        self.unsaved = 0  # symbols whose outcome could not be written
        self.kept = 0  # failed symbols whose earlier rows stay on the board
        self.bytes_written = 0

    def symbol_done(self, symbol: str, report: SymbolReport, matches: list[Match]) -> list[Match]:
        """Replace the symbol's group when it scanned, else record the failure beside it.

        A symbol a call scan found not held loses its call rows: they were priced on shares
        that are gone. Return the rows as written: flagged "new" where their contract was not
        on the board.
        """
        if self.store is None:
            return matches
        at = self.clock().isoformat()
        try:
            if report.status in OK_STATUSES:
                matches = mark_new(matches, self.store.contracts(self.side, symbol))
                self.bytes_written += self.store.save_group(
                    {
                        "symbol": symbol,
                        "side": self.side,
                        "status": report.status,
                        "error": report.error,
                        **head_facts(report),
                        "scanned_at": at,
                        "scan_id": self.scan_id,
                        "trigger": self.trigger,
                        "rules": self.rules,
                        "one_off": self.one_off,
                        "top": self.top,
                        "report": report.to_dict(),
                        "matches": matches,
                    }
                )
            elif report.status != PENDING:
                if report.status == NOT_HELD:
                    self.store.forget_side(self.side, [symbol])
                failure = {"status": report.status, "error": report.error, "at": at}
                failure["scan_id"] = self.scan_id
                if self.store.save_failure(self.side, symbol, failure):
                    self.kept += 1
        except redis.RedisError as exc:
            self.unsaved += 1
            if self.unsaved == 1:
                log.error("scan results not saved: Redis is unavailable (%s)", exc)
        return matches
