"""Turn one scan's lifecycle into live events and a snapshot that can redraw the page mid-scan.

Event payloads (published through ScanEvents, in this order):

- ``scan-started``: trigger, scan_id, side, symbols, total, started_at
- per symbol, ``symbol-done`` (symbol, index, status, error when there is one, count, spot,
  as_of, side, scan_id; the rows themselves are on the results board, written once just before,
  where the web worker serving a stream reads and renders them) then ``progress`` (index, total,
  symbol, matches_so_far, failed_so_far, elapsed_s, eta_s)
- ``scan-finished`` (success, message, counts, finished_at, side, trigger, scan_id, failed) when
  the scan completed, or ``scan-failed`` (reason in plain words, plus what is known) otherwise.

The snapshot (ScanEvents.set_state) holds the progress, each finished symbol's status and the
id of the last event it includes, so a page rendered from it (with the rows the scan has written
to the results board so far) can follow the stream from exactly there. Nothing grows with the
rows found: each symbol's rows are encoded and sent to Redis once, to the board.
Publishing is best effort: a Redis failure is logged and the scan goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from optscan.core.market import Clock
from optscan.core.match import Match
from optscan.core.models import OK_STATUSES, ScanResult
from optscan.store.events import ScanEvents

log = logging.getLogger(__name__)

# Status of a symbol when the scanner did not say how it went (it passes no report).
STATUS_DONE = "done"


def _report_fields(report: Any) -> tuple[str, str | None]:
    """Return (status, error) from a SymbolReport or a mapping with those keys."""
    if report is None:
        return STATUS_DONE, None
    if isinstance(report, dict):
        return str(report.get("status") or STATUS_DONE), report.get("error")
    return str(getattr(report, "status", None) or STATUS_DONE), getattr(report, "error", None)


class LiveScan:
    """Publish one scan's events and keep its snapshot; never let publishing stop the scan."""

    def __init__(
        self,
        events: ScanEvents,
        *,
        scan_id: str,
        trigger: str,
        side: str,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.events = events
        self.scan_id = scan_id
        self.trigger = trigger
        self.side = side
        self.clock = clock
        self.monotonic = monotonic
        self.publish_failures = 0
        self.last_event_id: str | None = None
        self._started_mono: float | None = None
        self._state: dict[str, Any] = {}

    # -- publishing, best effort ---------------------------------------------------------------

    def _publish(self, kind: str, data: dict[str, Any]) -> str | None:
        try:
            event_id = self.events.publish(kind, data)
        except Exception as exc:  # noqa: BLE001 - a live view is not worth a failed scan
            self._failed_to_publish(f"{kind} event", exc)
            return None
        self.last_event_id = event_id
        return event_id

    def _save_state(self) -> None:
        self._state["last_event_id"] = self.last_event_id
        self._state["updated_at"] = self.clock().isoformat()
        try:
            self.events.set_state(self._state)
        except Exception as exc:  # noqa: BLE001
            self._failed_to_publish("scan snapshot", exc)

    def _failed_to_publish(self, what: str, exc: Exception) -> None:
        self.publish_failures += 1
        # The first failure is worth a warning; a Redis outage would otherwise log per symbol.
        level = logging.WARNING if self.publish_failures == 1 else logging.DEBUG
        log.log(level, "scan %s: %s not published (%s: %s)", self.scan_id, what,
                type(exc).__name__, exc)  # fmt: skip

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def snapshot(self) -> dict[str, Any]:
        """Return a copy of the current snapshot."""
        return dict(self._state)

    def started(self, symbols: Sequence[str]) -> str | None:
        """Announce the scan of `symbols`; return the event id, or None if not published."""
        self._started_mono = self.monotonic()
        started_at: datetime = self.clock()
        data = {
            "trigger": self.trigger,
            "scan_id": self.scan_id,
            "side": self.side,
            "symbols": list(symbols),
            "total": len(symbols),
            "started_at": started_at.isoformat(),
        }
        event_id = self._publish("scan-started", data)
        self._state = {
            **data,
            "status": "running",
            "index": 0,
            "symbol": None,
            "matches_so_far": 0,
            "failed_so_far": 0,
            "elapsed_s": 0.0,
            "eta_s": None,
            "done": {},
        }
        self._save_state()
        return event_id

    def progress(
        self,
        index: int,
        total: int,
        symbol: str,
        matches: list[Match],
        report: Any = None,
    ) -> None:
        """Publish one symbol's rows and the scan's progress (a perform_scan progress callback)."""
        if self._started_mono is None:
            self._started_mono = self.monotonic()
        status, error = _report_fields(report)
        done: dict[str, Any] = {"symbol": symbol, "index": index, "status": status}
        if error:
            done["error"] = str(error)
        done["count"] = len(matches)
        self._state.setdefault("done", {})[symbol] = {k: done[k] for k in done if k != "symbol"}
        so_far = self._state.get("matches_so_far", 0) + len(matches)
        failed = self._state.get("failed_so_far", 0) + (status not in (*OK_STATUSES, STATUS_DONE))
        spot = getattr(report, "price", None) if report is not None else None
        as_of = getattr(report, "as_of", None) if report is not None else None
        where = {"side": self.side, "scan_id": self.scan_id}
        # Which vendor served the symbol, and why others were passed over (a fallback).
        provenance = {k: v for k in ("source", "fallback") if (v := getattr(report, k, None))}
        self._publish("symbol-done", {**done, "spot": spot, "as_of": as_of, **where, **provenance})

        elapsed = max(self.monotonic() - self._started_mono, 0.0)
        # Average time per symbol so far times what is left: crude, but honest about itself.
        eta = elapsed / index * (total - index) if index > 0 else None
        figures = {
            "index": index,
            "total": total,
            "symbol": symbol,
            "matches_so_far": so_far,
            "failed_so_far": failed,
            "elapsed_s": round(elapsed, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }
        self._publish("progress", figures)
        self._state.update(figures)
        self._save_state()

    def finished(self, result: ScanResult) -> None:
        """Publish how a scan that ran to its end went: scan-finished, or scan-failed."""
        counts = result.counts()
        failed = result.failed()
        common = {
            "scan_id": self.scan_id,
            "side": self.side,
            "trigger": self.trigger,
            "counts": counts,
            "finished_at": result.finished_at.isoformat(),
            "failed": failed,
        }
        if result.success:
            self._publish("scan-finished", {"success": True, "message": result.message, **common})
            self._finish("finished", result.message)
        else:
            self._publish(
                "scan-failed",
                {"reason": result.message, "interrupted": result.interrupted, **common},
            )
            self._finish("failed", result.message)

    def failed(self, reason: str) -> None:
        """Publish that the scan stopped without a result, with `reason` in plain words."""
        self._publish(
            "scan-failed",
            {
                "reason": reason,
                "scan_id": self.scan_id,
                "side": self.side,
                "trigger": self.trigger,
                "finished_at": self.clock().isoformat(),
            },
        )
        self._finish("failed", reason)

    def _finish(self, status: str, message: str) -> None:
        # The rows now live in the results store (or were discarded): keep only the outcome,
        # so a snapshot that still says "running" can only mean an interrupted scan.
        self._state = {
            "status": status,
            "scan_id": self.scan_id,
            "trigger": self.trigger,
            "side": self.side,
            "message": message,
            "started_at": self._state.get("started_at"),
            "total": self._state.get("total"),
            "index": self._state.get("index"),
            "matches_so_far": self._state.get("matches_so_far"),
            "failed_so_far": self._state.get("failed_so_far"),
        }
        self._save_state()
