"""Logging for the web app and the CLI: optscan's own lines on stderr, third-party noise folded.

One handler on the root logger writes to whatever sys.stderr is when a line is written (under
gunicorn: its error log; under `flask scan`: the terminal or the journal). gunicorn's own
loggers do not propagate to the root, so no line is written twice; Flask's default handler is
taken off the app's logger for the same reason.

yfinance logs a line per request when Yahoo misbehaves ("Cookie/crumb fetch failed ...,
continuing without crumb"). Those lines are counted, not written: `take_noise()` returns them
as one summary, which the scan job adds to its own finish or failure line.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter

__all__ = ["FORMAT", "configure_logging", "take_noise"]

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
# Libraries whose log lines are folded into the scan's own line.
NOISY_LOGGERS = ("yfinance", "curl_cffi")


class _StderrHandler(logging.StreamHandler):
    """Write to the current sys.stderr (the CLI test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _NoiseCounter(logging.Handler):
    """Count third-party log lines by logger and message instead of writing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Count one line."""
        try:
            message = " ".join(record.getMessage().split())
        except Exception:  # noqa: BLE001 - a bad format string must not break a request
            message = str(record.msg)
        with self._guard:
            self._counts[(record.name.split(".")[0], message)] += 1

    def take(self) -> Counter[tuple[str, str]]:
        """Return the counts so far and start again."""
        with self._guard:
            counts, self._counts = self._counts, Counter()
        return counts


_noise = _NoiseCounter()
_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))


def configure_logging(level: int = logging.INFO) -> None:
    """Send optscan's lines (from `level` up) to stderr once; count third-party noise."""
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    app_logger = logging.getLogger("optscan")
    app_logger.setLevel(level)
    try:
        from flask.logging import default_handler
    except ImportError:  # pragma: no cover - Flask is a dependency
        pass
    else:
        app_logger.removeHandler(default_handler)
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        noisy.propagate = False
        if _noise not in noisy.handlers:
            noisy.addHandler(_noise)


def take_noise() -> str | None:
    """Return the third-party lines counted since the last call as one sentence, or None."""
    counts = _noise.take()
    if not counts:
        return None
    total = sum(counts.values())
    (library, message), times = counts.most_common(1)[0]
    others = f" and {total - times} other lines" if total > times else ""
    return f'{library} logged "{message}" {times} time{"s" if times > 1 else ""}{others}'
