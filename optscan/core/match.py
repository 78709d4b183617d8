"""The result row: `Match`, its columns and the orders and selections of rows.

`Match` is the one definition of a result row. Its fields, in table order, carry their unit
and presentation in `Annotated` metadata; JSON, CSV, the HTML table, the terminal table and the
live rows all derive from `COLUMNS`, so adding a column is one edit here.

Units: names ending in `_pct` and `annualized_*`, `return_if_assigned*` and
`downside_protection` are PERCENT (52.1 = 52.1 %); `iv` and `pop_otm` are FRACTIONS; prices
(spot, strike, bid, cost basis, expected move) are USD per share, `premium` and `collateral` USD
per contract; `sigma_distance` is a ratio; dates are New York calendar dates in ISO form; `dte`
counts calendar days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Annotated, Literal, TypedDict, get_type_hints

Side = Literal["put", "call"]
SIDES: tuple[Side, ...] = ("put", "call")
SIDE_WORDS: dict[str, str] = {"put": "puts", "call": "calls"}


# How a value is shown: text, date, int, count (thousands separators), money (2 decimals),
# percent (a PERCENT, 1 decimal), fraction (a FRACTION shown as a percent), delta (3 decimals),
# ratio (2 decimals), flags (badges).
Kind = Literal[
    "text", "date", "int", "count", "money", "percent", "fraction", "delta", "ratio", "flags"
]


@dataclass(frozen=True)
class Column:
    """How one Match field is labelled, explained and shown."""

    label: str
    kind: Kind
    title: str  # the explanation, with its unit
    table: bool = True  # shown in the page's table
    text: bool = True  # shown in the terminal table
    sides: tuple[Side, ...] = SIDES  # the sides whose tables show it (None on the other side)
    name: str = ""  # filled in from the field name


class Match(TypedDict):
    """One contract that passed the rules (a row of the results)."""

    symbol: Annotated[str, Column("Symbol", "text", "Underlying symbol")]
    side: Annotated[Side, Column("Side", "text", "put or call", table=False, text=False)]
    contract: Annotated[
        str | None, Column("Contract", "text", "OCC contract symbol", table=False, text=False)
    ]
    expiration: Annotated[str, Column("Expiry", "date", "Expiration date (New York)")]
    dte: Annotated[int, Column("DTE", "int", "Calendar days to expiration (New York dates)")]
    strike: Annotated[float, Column("Strike", "money", "Strike price, USD")]
    bid: Annotated[float | None, Column("Bid", "money", "Bid, USD per share")]
    ask: Annotated[float | None, Column("Ask", "money", "Ask, USD per share")]
    mid: Annotated[float | None, Column("Mid", "money", "Mid price, USD per share")]
    spread_pct: Annotated[
        float | None, Column("Spread %", "percent", "Bid-ask spread, percent of mid", text=False)
    ]
    otm_pct: Annotated[
        float, Column("% OTM", "percent", "How far out of the money, percent of the spot price")
    ]
    annualized_return: Annotated[
        float, Column("Ann. %", "percent", "Annualized return: bid / strike x 365 / DTE, percent")
    ]
    delta: Annotated[float | None, Column("Delta", "delta", "Delta from the IV solved at mid")]
    iv: Annotated[
        float | None, Column("IV %", "fraction", "Implied volatility solved from the mid price")
    ]
    pop_otm: Annotated[
        float | None,
        Column(
            "POP %", "fraction", "Risk-neutral probability of expiring out of the money", text=False
        ),
    ]
    vendor_iv: Annotated[
        float | None,
        Column(
            "Vendor IV %",
            "fraction",
            "The source's own implied volatility (Cboe's or Yahoo's), for comparison",
            table=False,
            text=False,
        ),
    ]
    vendor_delta: Annotated[
        float | None,
        Column(
            "Vendor delta",
            "delta",
            "The source's own delta (Cboe's; Yahoo sends none), for comparison",
            table=False,
            text=False,
        ),
    ]
    open_interest: Annotated[int | None, Column("OI", "count", "Open interest, contracts")]
    volume: Annotated[int | None, Column("Vol.", "count", "Volume today, contracts")]
    premium: Annotated[
        float | None,
        Column("Prem. $", "money", "Premium received at the bid: bid x 100, USD per contract"),
    ]
    collateral: Annotated[
        float | None,
        Column(
            "Collat. $",
            "money",
            "Cash a cash-secured put ties up: strike x 100, USD per contract (calls: none)",
            text=False,
            sides=("put",),
        ),
    ]
    contracts: Annotated[
        int | None,
        Column(
            "Qty",
            "int",
            "Contracts you can sell: puts floor(cash / collateral) once cash is set;"
            " calls shares held // 100 (none when not held)",
        ),
    ]
    cost_basis: Annotated[
        float | None,
        Column(
            "Basis",
            "money",
            "Calls: the cost basis the row was priced on, USD per share (spot for shares not held)",
            table=False,
            text=False,
            sides=("call",),
        ),
    ]
    return_if_assigned: Annotated[
        float | None,
        Column(
            "Asg. %",
            "percent",
            "Calls: return if assigned, (strike - cost basis + bid) / cost basis x 100, percent",
            sides=("call",),
        ),
    ]
    return_if_assigned_annualized: Annotated[
        float | None,
        Column(
            "Asg. ann. %",
            "percent",
            "Calls: the return if assigned x 365 / DTE, percent per year",
            text=False,
            sides=("call",),
        ),
    ]
    downside_protection: Annotated[
        float | None,
        Column(
            "Cushion %",
            "percent",
            "Calls: how far the premium cushions the shares, bid / spot x 100, percent",
            text=False,
            sides=("call",),
        ),
    ]
    breakeven: Annotated[
        float | None,
        Column(
            "Break-even",
            "money",
            "Break-even price: strike -/+ bid, USD (the page shows it for puts: a covered"
            " call's own is the cost basis less the premium)",
            sides=("put",),
        ),
    ]
    expected_move: Annotated[
        float | None,
        Column(
            "± Move",
            "money",
            "Expected move to expiry, one standard deviation: spot x IV x sqrt(years), USD per"
            " share",
            text=False,
        ),
    ]
    sigma_distance: Annotated[
        float | None,
        Column(
            "σ away",
            "ratio",
            "How many expected moves the strike lies from the forward:"
            " |strike - forward| / (forward x IV x sqrt(years))",
            text=False,
        ),
    ]
    flags: Annotated[list[str], Column("Flags", "flags", "Warnings about this contract")]
    forward: Annotated[
        float | None,
        Column(
            "Forward",
            "money",
            "Forward price the IV, delta and POP were priced on: implied by the chain's"
            " put-call parity, or spot carried at the rate less the dividend yield"
            " (flag forward_fallback), USD per share",
            table=False,
            text=False,
        ),
    ]
    spot: Annotated[
        float | None,
        Column(
            "Spot",
            "money",
            "Price of the stock when the chain was quoted, USD per share",
            table=False,
            text=False,
        ),
    ]
    earnings_date: Annotated[
        str | None,
        Column(
            "Earnings",
            "date",
            "Next earnings report (New York date), if known",
            table=False,
            text=False,
        ),
    ]
    ex_dividend_date: Annotated[
        str | None,
        Column(
            "Ex-div",
            "date",
            "Ex-dividend date (New York), if known",
            table=False,
            text=False,
        ),
    ]


def _columns() -> tuple[Column, ...]:
    hints = get_type_hints(Match, include_extras=True)
    found = []
    for name, hint in hints.items():
        meta = next(m for m in hint.__metadata__ if isinstance(m, Column))
        found.append(replace(meta, name=name))
    return tuple(found)


COLUMNS: tuple[Column, ...] = _columns()
MATCH_FIELDS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
# Fields that hold whole numbers (JSON may carry them as floats).
INTEGER_FIELDS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.kind in ("int", "count"))


def by_symbol_return(matches: Iterable[Match]) -> list[Match]:
    """Order matches by symbol, then best annualized return first."""
    return sorted(matches, key=lambda m: (m["symbol"], -(m.get("annualized_return") or 0.0)))


def top_per_symbol(matches: Iterable[Match], top: int) -> list[Match]:
    """Return each symbol's `top` best matches by annualized return (0: all), by symbol."""
    ordered = by_symbol_return(matches)
    if top <= 0:
        return ordered
    seen: dict[str, int] = {}
    kept = []
    for match in ordered:
        seen[match["symbol"]] = rank = seen.get(match["symbol"], 0) + 1
        if rank <= top:
            kept.append(match)
    return kept


def side_columns(side: str, *, where: str = "table") -> tuple[Column, ...]:
    """Return the columns a side's page table ("table") or terminal table ("text") shows."""
    return tuple(c for c in COLUMNS if getattr(c, where) and side in c.sides)
