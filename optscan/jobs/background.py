"""After-scan work off the scan's path: a daemon thread, waited for within a limit.

The scan job starts these once the result is stored (the history's recording, the alert): a
daemon thread (a greenlet under gevent) that never fails the scan. The web never waits for
one; `flask scan` waits for each before exiting, for a bounded time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Self, TypeVar

__all__ = ["AfterScan", "start_after_scan"]

W = TypeVar("W", bound="AfterScan")


class AfterScan:
    """One piece of after-scan work in a daemon thread; subclasses do it in `_run`."""

    def __init__(self, name: str, limit: float):
        """Prepare the thread `name`; `limit` is the seconds the work may take, all told."""
        self.limit = limit
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        """Start the work and return self."""
        self._thread.start()
        return self

    def wait(self) -> bool:
        """Wait for the work within its limit; return whether it finished."""
        self._thread.join(self.limit)
        return not self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError


def start_after_scan(make: Callable[[], W], log: logging.Logger, what: str) -> W | None:
    """Return the work `make` builds, started; None (logged as `what`) if it could not start."""
    try:
        return make().start()
    except Exception:
        log.exception("%s not started", what)
        return None
