"""Plain-text rendering of scan progress and matches for the terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TextIO

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (header, field, format); numbers are right-aligned with fixed decimals
    ("Symbol", "symbol", "s"),
    ("Expiry", "expiration", "s"),
    ("DTE", "dte", "d"),
    ("Strike", "strike", ".2f"),
    ("Bid", "bid", ".2f"),
    ("Ask", "ask", ".2f"),
    ("Mid", "mid", ".2f"),
    ("OTM%", "otm_pct", ".1f"),
    ("Ann%", "annualized_return", ".1f"),
    ("Delta", "delta", ".3f"),
    ("IV%", "iv", "pct"),
    ("OI", "open_interest", "d"),
    ("Vol", "volume", "d"),
    ("B/E", "breakeven", ".2f"),
    ("Flags", "flags", "flags"),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if fmt == "flags":
        return ",".join(value)
    if fmt == "pct":
        return f"{value * 100:.1f}"
    if fmt == "d":
        return f"{int(value):d}"
    return format(value, fmt)


def format_matches(matches: Sequence[dict[str, Any]]) -> str:
    """Return matches as an aligned table, best annualized return first within a symbol."""
    ordered = sorted(matches, key=lambda m: (m["symbol"], -(m["annualized_return"] or 0.0)))
    rows = [[_cell(m.get(field), fmt) for _, field, fmt in COLUMNS] for m in ordered]
    headers = [h for h, _, _ in COLUMNS]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    left = {i for i, (_, _, fmt) in enumerate(COLUMNS) if fmt in ("s", "flags")}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


class ProgressPrinter:
    """Show per-symbol progress: a redrawn bar on a terminal, log lines otherwise."""

    def __init__(self, stream: TextIO, *, tty: bool, width: int = 30):
        self.stream = stream
        self.tty = tty
        self.width = width
        self.found = 0

    def __call__(
        self,
        index: int,
        total: int,
        symbol: str,
        matches: list[dict[str, Any]],
        report: Any = None,
    ) -> None:
        self.found += len(matches)
        if not self.tty:
            # One line per symbol, so journald and log files read well.
            print(
                f"scan {index}/{total} {symbol}: {len(matches)} matches ({self.found} so far)",
                file=self.stream,
                flush=True,
            )
            return
        filled = round(self.width * index / total)
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if index == total else ""
        print(
            f"\r[{bar}] {index}/{total} {symbol:<6} {self.found} matches",
            end=end,
            file=self.stream,
            flush=True,
        )
