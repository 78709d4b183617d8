"""Clocks for tests: the app reads time only through an injected clock."""

from __future__ import annotations

from datetime import datetime


class FrozenClock:
    """A clock that stands still until told to move."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at
