"""OCC option symbols (root, expiration, side, strike) and which roots stand for an underlying.

An OCC symbol is the option root (1-6 letters or digits), the expiration as YYMMDD, C or P, and
the strike in thousandths of a dollar on 8 digits: AAPL260724C00110000 is the AAPL call of
2026-07-24 at 110.000 USD. The official form pads the root with spaces to 6 characters; Cboe
and Yahoo send it without, and both forms are read here.

A root is not always the underlying's symbol:
- index options list PM-settled weeklies under a root of their own (SPXW beside SPX, NDXP
  beside NDX, RUTW beside RUT, VIXW beside VIX); where both roots list an expiration, the
  PM-settled one is kept, since optscan prices every contract to the 16:00 New York close;
- after a corporate action the old contracts move to an adjusted root, the symbol and a digit
  (AMD1, AAPL1): they deliver something other than 100 shares and are never kept.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date

from optscan.core.match import Side

__all__ = ["INDEX_ROOTS", "OccReader", "OccSymbol", "occ_parts", "parse_occ", "roots_of"]

# The fixed tail (YYMMDD, C or P, 8 strike digits) and the root before it.
_TAIL = re.compile(r"\d{6}[CP]\d{8}")
_ROOT = re.compile(r"[A-Z0-9]{1,6}")
TAIL_LENGTH = 15

# Index underlyings whose options Cboe lists under more than one root, most wanted first
# (PM-settled before AM-settled), and the other index underlyings Cboe serves.
INDEX_ROOTS: dict[str, tuple[str, ...]] = {
    "SPX": ("SPXW", "SPX"),
    "NDX": ("NDXP", "NDX"),
    "RUT": ("RUTW", "RUT"),
    "VIX": ("VIXW", "VIX"),
    "XSP": ("XSP",),
    "XND": ("XND",),
    "MRUT": ("MRUT",),
    "DJX": ("DJX",),
    "OEX": ("OEX",),
    "XEO": ("XEO",),
}


@dataclass(frozen=True)
class OccSymbol:
    """One OCC symbol's parts."""

    root: str
    expiration: date
    side: Side
    strike: float  # USD

    @property
    def adjusted(self) -> bool:
        """Return whether the root is an adjusted one (a digit in it, as in AMD1)."""
        return any(c.isdigit() for c in self.root)


def parse_occ(text: str) -> OccSymbol:
    """Return the parts of an OCC symbol, or raise ValueError if it is not one."""
    root, expiration, is_call, strike = occ_parts(text)
    return OccSymbol(root, expiration, "call" if is_call else "put", strike)


def occ_parts(text: str) -> tuple[str, date, bool, float]:
    """Return (root, expiration, is_call, strike USD) of an OCC symbol, or raise ValueError.

    The plain-tuple form of parse_occ, for a whole chain's worth of symbols at a time.
    """
    if not isinstance(text, str) or len(text) <= TAIL_LENGTH:
        raise ValueError(f"not an OCC option symbol: {text!r}")
    root = text[:-TAIL_LENGTH].rstrip(" ")
    if not _ROOT.fullmatch(root) or not _TAIL.fullmatch(text, len(text) - TAIL_LENGTH):
        raise ValueError(f"not an OCC option symbol: {text!r}")
    tail = text[-TAIL_LENGTH:]
    return root, _expiration(tail[:6]), tail[6] == "C", int(tail[7:]) / 1000.0


class OccReader:
    """Read many OCC symbols fast: each root-and-date head is checked once, then remembered.

    A chain of thousands of contracts has a few dozen heads (AAPL260724); what follows a
    known head (C or P, 8 digits) is checked per symbol with string methods alone.
    """

    def __init__(self) -> None:
        self._heads: dict[str, tuple[str, date] | None] = {}

    def read(self, text: str) -> tuple[str, date, bool, float] | None:
        """Return (root, expiration, is_call, strike USD), or None for no OCC symbol."""
        head = text[:-9]
        known = self._heads.get(head, _UNSEEN)
        if known is _UNSEEN:
            known = self._heads[head] = _head(head)
        side, digits = text[-9:-8], text[-8:]
        if known is None or side not in ("C", "P") or not (digits.isdigit() and digits.isascii()):
            return None
        assert isinstance(known, tuple)
        return known[0], known[1], side == "C", int(digits) / 1000.0


_UNSEEN = object()


def _head(head: str) -> tuple[str, date] | None:
    try:
        root, expiration, _, _ = occ_parts(f"{head}C00000000")
    except ValueError:
        return None
    return root, expiration


@functools.lru_cache(maxsize=1024)
def _expiration(yymmdd: str) -> date:
    # A chain lists a few dozen expirations: each is parsed once. Years are 2000-2099.
    try:
        return date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        raise ValueError(f"not an OCC expiration: {yymmdd!r}") from None


def roots_of(symbol: str) -> tuple[str, ...]:
    """Return the option roots that stand for an underlying, most wanted first.

    symbol is optscan's (^SPX, SPX, BRK-B) or Cboe's (_SPX): the root is the symbol without
    its index mark and punctuation (BRK-B's options are BRKB), plus an index's other roots.
    """
    base = re.sub(r"[^A-Z0-9]", "", symbol.upper())
    return INDEX_ROOTS.get(base, (base,))
