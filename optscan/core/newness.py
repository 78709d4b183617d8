"""Which rows are new: a contract's identity, and the "new" flag against a previous set."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from optscan.core.match import Match

NEW = "new"  # the flag of a row whose contract was not among its symbol's previous rows


def contract_key(match: Match) -> str:
    """Return what identifies a row's contract: its OCC symbol, else its terms."""
    contract = match.get("contract")
    if contract:
        return contract
    return f"{match['symbol']} {match['side']} {match['expiration']} {match['strike']:g}"


def contract_keys(matches: Iterable[Match]) -> list[str]:
    """Return the contract keys of rows, sorted and without repeats."""
    return sorted({contract_key(m) for m in matches})


def mark_new(matches: list[Match], previous: Collection[str] | None) -> list[Match]:
    """Return rows with NEW first in the flags of those not in `previous` (None: first scan)."""
    if previous is None:
        return matches
    before = set(previous)
    return [
        m if contract_key(m) in before or NEW in m["flags"] else _flagged_new(m) for m in matches
    ]


def _flagged_new(match: Match) -> Match:
    marked = match.copy()
    marked["flags"] = [NEW, *match["flags"]]
    return marked
