"""Run perform_scan() while holding the one-scan-at-a-time lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from optscan.locking import ScanLock, lock_holder
from optscan.market import format_et
from optscan.scanner import ScanResult, perform_scan


class ScanBusy(Exception):
    """Another scan holds the lock."""

    def __init__(self, holder: dict[str, Any] | None):
        self.holder = holder or {}
        super().__init__(describe_busy(self.holder))


def describe_busy(holder: dict[str, Any]) -> str:
    """Return a plain sentence naming who runs the current scan and since when."""
    who = holder.get("trigger", "another process")
    since = holder.get("started_at")
    when = f" since {format_et(datetime.fromisoformat(since))}" if since else ""
    return f"A scan is already running (started by {who}{when}); try again when it finishes."


def run_exclusive(lock: ScanLock, **scan_kwargs: Any) -> ScanResult:
    """Take the lock or raise ScanBusy, run the scan, and release the lock in every case."""
    if not lock.acquire():
        raise ScanBusy(lock_holder(lock.client, lock.key))
    try:
        # A lost lock means another scan may start: stop before two write results.
        return perform_scan(**scan_kwargs, should_continue=lambda: not lock.lost)
    finally:
        lock.release()
