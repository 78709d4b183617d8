"""What an alert says: pure functions from matches to a title and a plain-text body."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from optscan.core.formatting import display
from optscan.core.match import SIDE_WORDS, Match

TOP = 10  # matches listed in one message, best annualized return first


@dataclass(frozen=True)
class Message:
    """One notification: a title and a plain-text body."""

    title: str
    body: str


def page_link(public_url: str | None, side: str) -> str | None:
    """Return the address of a side's results on the page, or None without a public URL."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/?{urlencode({'side': side})}"


def best_first(matches: Sequence[Match]) -> list[Match]:
    """Order matches by annualized return, best first (then by symbol and contract)."""
    return sorted(
        matches,
        key=lambda m: (-(m.get("annualized_return") or 0.0), m["symbol"], m.get("contract") or ""),
    )


def match_line(match: Match) -> str:
    """Return one match as a line: symbol, expiry, strike, bid, annualized % and delta."""
    strike = display(match["strike"], "money")
    return (
        f"{match['symbol']} {match['expiration']} {match['side']} {strike}:"
        f" bid {display(match.get('bid'), 'money')},"
        f" {display(match.get('annualized_return'), 'percent')} % annualized,"
        f" delta {display(match.get('delta'), 'delta')}"
    )


def new_matches_message(
    side: str, new: Sequence[Match], link: str | None, top: int = TOP
) -> Message:
    """Return the alert for a scan's new matches: the best `top` of them and the page link."""
    if not new:
        raise ValueError("an alert needs at least one new match")
    words = SIDE_WORDS.get(side, side)
    count = len(new)
    title = f"optscan: {count} new {words[:-1] if count == 1 else words}"
    shown = best_first(new)[:top]
    lines = [match_line(m) for m in shown]
    if count > len(shown):
        lines.append(f"…and {count - len(shown)} more.")
    if link:
        lines.append(f"All results: {link}")
    return Message(title, "\n".join(lines))


def probe_message(link: str | None) -> Message:
    """Return the message `flask notify test` sends."""
    body = "optscan can reach this address: alerts on new matches will arrive here."
    if link:
        body += f"\nResults: {link}"
    return Message("optscan: test message", body)
