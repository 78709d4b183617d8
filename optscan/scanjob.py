"""Who holds the one-scan-at-a-time lock, in words, and the error for a busy lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from optscan.market import format_et


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
