"""Several sources in order: per symbol, the next one answers when one fails for want of service.

OPTSCAN_SOURCE=yahoo,cboe (any order, any number). A symbol starts with the first source; when
a call for it fails as rate_limited, unreachable or with an error of the source (error,
malformed, empty), the symbol moves on to the next source for that call and every later one:
a symbol whose chains Yahoo starts refusing half-way gets the rest from Cboe. What a source
says about the symbol itself (unknown_symbol, no_options) is its answer: no other is asked.

Every quote handed out (alone or with a chain) names the vendor of its data (Quote.source) and,
when earlier sources failed, how (Quote.passed_over): the scan reports both per symbol. A live
source whose breaker has opened or that found its vendor unreachable fails at once, without a
request, so that passing over it costs nothing for the rest of the scan.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import TypeVar

from .base import Chain, OptionSource, Quote, SourceError
from .base import normalise_symbol as normalise

__all__ = ["FALLBACK_KINDS", "FallbackSource"]

T = TypeVar("T")

# SourceError kinds that say the source could not serve, not that the symbol has no answer.
FALLBACK_KINDS = frozenset({"rate_limited", "unreachable", "error", "malformed", "empty"})


class FallbackSource:
    """Ask named sources in order, per symbol, moving on when one cannot serve (see module)."""

    def __init__(self, sources: Sequence[tuple[str, OptionSource]]):
        if len(sources) < 2:
            raise ValueError("a fallback needs at least two sources")
        self.sources = list(sources)
        self._lock = threading.Lock()
        self._start: dict[str, int] = {}  # symbol -> index of the source it is at
        self._notes: dict[str, list[str]] = {}  # symbol -> how the sources before it failed
        self.served: dict[str, int] = {name: 0 for name, _ in sources}  # answers per source

    def quote(self, symbol: str) -> Quote:
        """Return the quote from the first source that can serve the symbol."""
        symbol = normalise(symbol)
        return self._noted(symbol, self._ask(symbol, lambda source: source.quote(symbol)))

    def expirations(self, symbol: str) -> list[date]:
        """Return the expirations from the first source that can serve the symbol."""
        symbol = normalise(symbol)
        return self._ask(symbol, lambda source: source.expirations(symbol))

    def chain(self, symbol: str, expiration: date) -> Chain:
        """Return one expiration's chain from the first source that can serve it."""
        symbol = normalise(symbol)
        chain = self._ask(symbol, lambda source: source.chain(symbol, expiration))
        quote = self._noted(symbol, chain.quote)
        return chain if quote is chain.quote else dataclasses.replace(chain, quote=quote)

    def close(self) -> None:
        """Close every source that can be closed."""
        for _, source in self.sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _ask(self, symbol: str, call: Callable[[OptionSource], T]) -> T:
        with self._lock:
            index = self._start.get(symbol, 0)
        for position in range(index, len(self.sources)):
            name, source = self.sources[position]
            try:
                answer = call(source)
            except SourceError as exc:
                earlier = self._notes_of(symbol)
                if exc.kind not in FALLBACK_KINDS:
                    if not earlier:
                        raise
                    raise exc.reworded(f"{exc.message} (after {'; '.join(earlier)})") from exc
                note = f"{name}: {exc.kind}: {exc.message}"
                self._passed_over(symbol, position, note)
                if position == len(self.sources) - 1:
                    everything = [n for n in earlier if n != note] + [note]
                    raise exc.reworded("; ".join(everything)) from exc
                continue
            with self._lock:
                self.served[name] += 1
            return answer
        raise AssertionError("unreachable")  # the last source answers or raises

    def _passed_over(self, symbol: str, position: int, note: str) -> None:
        with self._lock:
            # The last source stays: a symbol always has one to ask.
            following = min(position + 1, len(self.sources) - 1)
            self._start[symbol] = max(self._start.get(symbol, 0), following)
            notes = self._notes.setdefault(symbol, [])
            if note not in notes:
                notes.append(note)

    def _notes_of(self, symbol: str) -> list[str]:
        with self._lock:
            return list(self._notes.get(symbol, ()))

    def _noted(self, symbol: str, quote: Quote) -> Quote:
        notes = tuple(self._notes_of(symbol))
        return dataclasses.replace(quote, passed_over=notes) if notes else quote
