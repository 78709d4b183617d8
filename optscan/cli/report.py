"""Plain-text rendering of scan progress and matches for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from optscan.core.formatting import display
from optscan.core.match import Match, by_symbol_return, side_columns

_LEFT_KINDS = ("text", "date", "flags")


def format_matches(matches: Sequence[Match]) -> str:
    """Return matches as an aligned table, best annualized return first within a symbol."""
    ordered = by_symbol_return(matches)
    columns = side_columns(ordered[0]["side"] if ordered else "put", where="text")
    rows = [[display(m.get(c.name), c.kind, blank="-") for c in columns] for m in ordered]
    headers = [c.label for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    left = {i for i, c in enumerate(columns) if c.kind in _LEFT_KINDS}

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

    def __call__(self, index: int, total: int, symbol: str, matches: list[Match], *_: Any) -> None:
        """Show that `symbol` is done (its report, passed last by the scan, is not shown)."""
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
