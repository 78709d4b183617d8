"""Size a symbol's analysed rows from the books: contracts, cost basis and calls' returns.

Puts: with cash set, `contracts` = floor(cash / collateral) and rows whose collateral is more
than the cash are flagged `over_cash` (kept, not hidden); without cash, `contracts` stays NaN.
Calls: a holding gives its cost basis and `contracts` = shares // 100; a symbol not held (a
scan asked for symbols not held) is priced as if bought at spot, flagged `unowned`, with no
contracts. Rows with a strike below the cost basis are flagged `below_basis`. Units as in
core/wheel.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from optscan.core import wheel
from optscan.core.book import Book
from optscan.core.chain import ChainRows


def size_rows(rows: ChainRows, book: Book | None) -> ChainRows:
    """Return the rows with the books' figures set (unchanged without a book)."""
    if book is None:
        return rows
    if rows.side == "put":
        sized = replace(rows, contracts=wheel.put_contracts(rows.strike, book.cash))
        if book.cash is None:
            return sized
        with np.errstate(invalid="ignore"):
            short = rows.collateral > book.cash
        return replace(sized, flag_bits=sized.with_flag("over_cash", short))
    holding = book.covering(rows.symbol)
    if holding is None:
        basis = rows.spot
        contracts = np.full(len(rows), np.nan)
        rows = replace(rows, flag_bits=rows.with_flag("unowned", np.ones(len(rows), bool)))
    else:
        basis = np.full(len(rows), holding.cost_basis)
        contracts = np.full(len(rows), float(holding.coverable_contracts))
    with np.errstate(invalid="ignore", divide="ignore"):
        returned = wheel.return_if_assigned_pct(rows.strike, basis, rows.bid)
        returned[~rows.valid] = np.nan
        below = rows.strike < basis
    return replace(
        rows,
        contracts=contracts,
        cost_basis=basis,
        return_if_assigned=returned,
        return_if_assigned_annualized=wheel.annualize_pct(returned, rows.dte),
        flag_bits=rows.with_flag("below_basis", below),
    )
