"""The one rule for ticker symbols, shared by the watchlist, the CLI, the page and the sources."""

from __future__ import annotations

import re
from collections.abc import Iterable

SYMBOL_RULE = (
    "a symbol is 1-10 characters: ASCII letters A-Z, digits 0-9, '.', '-' or '=', "
    "starting with a letter or digit (an index may start with '^', as in ^SPX)"
)
# Checked on the stripped input BEFORE upper-casing: str.upper() turns 'ß' into 'SS' and
# ligatures into ASCII pairs, which would smuggle non-ASCII input past a check done after.
_SYMBOL_RE = re.compile(r"\^?[A-Za-z0-9][A-Za-z0-9.\-=]{0,9}")


class InvalidSymbol(ValueError):
    """Refuse one or more symbols that break the symbol rule; `symbols` lists them."""

    def __init__(self, symbols: Iterable[object]):
        self.symbols = list(symbols)
        shown = ", ".join(repr(s) for s in self.symbols)
        plural = "s" if len(self.symbols) != 1 else ""
        super().__init__(f"invalid symbol{plural} {shown}: {SYMBOL_RULE}")


def normalize_symbol(raw: object) -> str:
    """Return `raw` stripped and upper-cased, or raise InvalidSymbol if it breaks the rule."""
    if not isinstance(raw, str):
        raise InvalidSymbol([raw])
    stripped = raw.strip()
    if not _SYMBOL_RE.fullmatch(stripped):
        raise InvalidSymbol([raw])
    return stripped.upper()


def normalize_symbols(raws: Iterable[object] | str) -> list[str]:
    """Return all symbols normalised and deduplicated in order, or raise listing every bad one."""
    batch = [raws] if isinstance(raws, str) else list(raws)
    good: list[str] = []
    bad: list[object] = []
    for raw in batch:
        try:
            symbol = normalize_symbol(raw)
        except InvalidSymbol:
            bad.append(raw)
            continue
        if symbol not in good:
            good.append(symbol)
    if bad:
        raise InvalidSymbol(bad)
    return good
