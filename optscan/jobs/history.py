"""After a completed scan: record it in the history and prune, off the scan's path.

`after_scan` is called by the scan job once the result is stored, like the alert hook. It
starts a daemon thread (a greenlet under gevent) that records the scan's symbols, then prunes
what the retention lets go. A failure is logged in one line and never fails the scan. The web
never waits for it; `flask scan` waits for it before exiting, for a bounded time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from optscan.core.models import ScanResult
from optscan.jobs.background import AfterScan, start_after_scan

if TYPE_CHECKING:  # built by the Flask app; this module needs only its API
    from optscan.extensions import Services

log = logging.getLogger(__name__)


class Recording(AfterScan):
    """One scan's recording on its way in a daemon thread; `error` says why it failed."""

    def __init__(self, svc: Services, result: ScanResult, scan_id: str):
        """Prepare the recording of `result`; `start` sets it going."""
        from optscan.store.sql.database import BUSY_TIMEOUT_SECONDS

        # Waiting for the write lock twice (record, then a prune batch), and a little more.
        super().__init__("optscan-history", 2 * BUSY_TIMEOUT_SECONDS + 5.0)
        self.rows: int | None = None  # rows added, once recorded
        self.pruned = 0
        self.error: str | None = None
        self._svc, self._result, self._scan_id = svc, result, scan_id

    def _run(self) -> None:
        try:
            svc, result = self._svc, self._result
            self.rows = svc.history.record(result, self._scan_id)
            self.pruned = svc.history.prune()
        except Exception as exc:  # noqa: BLE001 - the history never fails a scan, nor the process
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("scan %s not recorded in the history: %s", self._scan_id[:8], self.error)
        else:
            log.debug("history: %d rows recorded, %d pruned", self.rows, self.pruned)


def after_scan(svc: Services, result: ScanResult, scan_id: str) -> Recording | None:
    """Start recording a completed scan; None when there is nothing to record."""
    if not result.success:
        return None
    return start_after_scan(lambda: Recording(svc, result, scan_id), log, "history recording")
