"""The trader's own books: shares and cost basis per symbol, and cash for puts.

The one validation of a position and of the cash (the CLI, the page and the CSV import use it),
and which symbols a scan covers: puts the watchlist, calls the symbols held with at least one
contract's worth of shares (plus, when asked, the watchlist's others, priced at spot).
Units: shares are whole shares, cost basis USD PER SHARE, cash USD.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from optscan.core.match import Side
from optscan.core.symbols import InvalidSymbol, normalize_symbol, normalize_symbols
from optscan.core.wheel import CONTRACT_SIZE, Holding

MAX_SHARES = 1_000_000_000
MAX_PRICE = 10_000_000.0  # USD per share
MAX_CASH = 1_000_000_000_000.0  # USD
CSV_COLUMNS = ("symbol", "shares", "cost_basis")
NOT_HELD = "not_held"  # the status of a call scan's symbol that is not held


class InvalidPosition(ValueError):
    """Refuse a position, a cash amount or an import file; the message says why."""


def _number(raw: Any, what: str) -> float:
    if isinstance(raw, bool):
        raise InvalidPosition(f"{what} must be a number, got {raw!r}")
    value = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise InvalidPosition(f"{what} must be a number, got {raw[:40]!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPosition(f"{what} must be a number, got {raw!r}")
    return float(value)


def parse_shares(raw: Any) -> int:
    """Return a share count: a whole number from 0 up."""
    value = _number(raw, "shares")
    if value != int(value) or value < 0:
        raise InvalidPosition(f"shares must be a whole number, 0 or more, got {raw!r}")
    if value > MAX_SHARES:
        raise InvalidPosition(f"shares must be at most {MAX_SHARES:,}, got {raw!r}")
    return int(value)


def parse_cost_basis(raw: Any) -> float:
    """Return a cost basis: USD per share, more than 0."""
    value = _number(raw, "cost basis")
    if value <= 0:
        raise InvalidPosition(f"cost basis must be more than 0 (USD per share), got {raw!r}")
    if value > MAX_PRICE:
        raise InvalidPosition(f"cost basis must be at most {MAX_PRICE:,.0f} USD, got {raw!r}")
    return value


def parse_cash(raw: Any) -> float:
    """Return a cash amount: USD, 0 or more."""
    value = _number(raw, "cash")
    if value < 0:
        raise InvalidPosition(f"cash must be 0 or more (USD), got {raw!r}")
    if value > MAX_CASH:
        raise InvalidPosition(f"cash must be at most {MAX_CASH:,.0f} USD, got {raw!r}")
    return value


@dataclass(frozen=True)
class Position:
    """One symbol's shares and cost basis, validated."""

    symbol: str
    shares: int
    cost_basis: float  # USD per share

    @classmethod
    def parse(cls, symbol: Any, shares: Any, cost_basis: Any) -> Position:
        """Return a position from raw values, or raise InvalidPosition / InvalidSymbol."""
        return cls(normalize_symbol(symbol), parse_shares(shares), parse_cost_basis(cost_basis))

    @property
    def holding(self) -> Holding:
        """Return the shares and cost basis as the wheel math takes them."""
        return Holding(self.shares, self.cost_basis)


def read_positions_csv(text: str) -> list[Position]:
    """Return the positions of a `symbol,shares,cost_basis` CSV, or refuse it whole.

    The first line must name the columns; a bad line raises InvalidPosition naming its line
    number, and a symbol listed twice is refused at its second line.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except StopIteration:
        raise InvalidPosition(
            "the file is empty: its first line must be symbol,shares,cost_basis"
        ) from None
    except csv.Error as exc:
        raise InvalidPosition(f"line 1: not CSV ({exc})") from None
    if tuple(header) != CSV_COLUMNS:
        raise InvalidPosition(
            f"line 1: the columns must be symbol,shares,cost_basis, got {','.join(header)[:80]!r}"
        )
    positions: dict[str, Position] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                raise InvalidPosition(f"line {line}: expected 3 values, got {len(row)}")
            try:
                position = Position.parse(*row)
            except (InvalidPosition, InvalidSymbol) as exc:
                raise InvalidPosition(f"line {line}: {exc}") from None
            if position.symbol in positions:
                raise InvalidPosition(f"line {line}: {position.symbol} is listed twice")
            positions[position.symbol] = position
    except csv.Error as exc:
        raise InvalidPosition(f"line {reader.line_num}: not CSV ({exc})") from None
    return list(positions.values())


@dataclass(frozen=True)
class Book:
    """What a scan knows of the trader's books: holdings by symbol and cash for puts."""

    holdings: Mapping[str, Holding] = field(default_factory=dict)
    cash: float | None = None  # USD; None: not set (puts are not sized)

    def covering(self, symbol: str) -> Holding | None:
        """Return the symbol's holding if it covers at least one call, else None."""
        holding = self.holdings.get(symbol)
        return holding if holding is not None and holding.coverable_contracts >= 1 else None

    def covered_symbols(self) -> list[str]:
        """Return the symbols held with enough shares for a call, sorted."""
        return sorted(s for s in self.holdings if self.covering(s) is not None)

    def not_held(self, symbol: str) -> str:
        """Return why a call scan skips a symbol, in plain words."""
        holding = self.holdings.get(symbol)
        if holding is None or holding.shares == 0:
            return (
                f"{symbol} is not held: add the position (flask positions set, or the Positions"
                " page), or scan symbols not held"
            )
        return (
            f"{symbol}: {holding.shares} shares held, fewer than the {CONTRACT_SIZE} one call"
            " covers"
        )


def scan_symbols(
    side: Side,
    named: Iterable[str] | None,
    book: Book | None,
    watchlist: Callable[[], list[str]],
    unowned: bool,
) -> list[str]:
    """Return the symbols a scan covers, sorted unless named.

    Named symbols are scanned as named (a call scan reports those not held as not_held).
    Otherwise puts cover the active watchlist; calls the symbols held with enough shares,
    plus, when `unowned`, the active watchlist's others. Without a book, the watchlist.
    """
    if named is not None:
        return normalize_symbols(named)
    if side == "put" or book is None:
        return watchlist()
    held = book.covered_symbols()
    if not unowned:
        return held
    return sorted(set(held) | set(watchlist()))
