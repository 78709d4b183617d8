"""Replay recorded answers as a source, the market frozen at their capture time.

Two layouts, per symbol folder; a folder is served from whichever it holds (cboe.json first):
- Yahoo: <root>/<SYMBOL>/<YYYY-MM-DD>.json, each the raw body Yahoo returns for
  /v7/finance/options/SYMBOL?date=<00:00 UTC of that day>. A symbol Yahoo lists no options for
  is kept as <root>/<SYMBOL>/no-date.json, the raw body of the request without a date.
- Cboe: <root>/<SYMBOL>/cboe.json, the raw delayed-quotes document (every expiration).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from .base import Chain, EmptyChain, MalformedResponse, NoOptions, Quote, SourceError
from .cboedoc import CboeDocument, parse_cboe
from .v7 import V7Answer, normalise_symbol, parse_v7

T = TypeVar("T")

__all__ = ["CBOE_FILE", "NO_DATE_FILE", "ReplaySource", "recording_name"]

NO_DATE_FILE = "no-date.json"
CBOE_FILE = "cboe.json"
_DATE_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})\.json")


def recording_name(expiration: date | None) -> str:
    """Return the file name of a recording: the expiration day, or no-date.json."""
    return NO_DATE_FILE if expiration is None else f"{expiration.isoformat()}.json"


class ReplaySource:
    """Expirations, chains and quotes read from a directory of recorded Yahoo answers.

    The quote and each chain carry their capture time (regularMarketTime): a replay never
    looks at today's clock.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"replay directory {self.root} does not exist")
        self._lock = threading.Lock()
        self._answers: dict[Path, V7Answer] = {}
        self._documents: dict[Path, CboeDocument] = {}

    def symbols(self) -> list[str]:
        """Return the recorded symbols, sorted."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._files(p))

    def expirations(self, symbol: str) -> list[date]:
        """Return the recorded expirations, nearest first (a replay lists what it recorded)."""
        symbol = normalise_symbol(symbol)
        document = self._cboe(symbol)
        if document is not None:
            return list(document.expirations)
        recorded = self._recorded(symbol)
        if not recorded:
            raise NoOptions(symbol, f"recorded with no option expirations in {self._dir(symbol)}")
        return sorted(recorded)

    def quote(self, symbol: str) -> Quote:
        """Return the quote of the front recording (what Yahoo sent without a date)."""
        symbol = normalise_symbol(symbol)
        document = self._cboe(symbol)
        if document is not None:
            return document.quote
        return self._answer(symbol, self.front_path(symbol)).quote

    def chain(self, symbol: str, expiration: date) -> Chain:
        """Return one recorded expiration's chain, with the quote captured alongside it."""
        symbol = normalise_symbol(symbol)
        document = self._cboe(symbol)
        if document is not None:
            found = document.chain(expiration)
            if found is None:
                raise SourceError(symbol, f"no contracts of {expiration} in the Cboe recording")
            return found
        recorded = self._recorded(symbol)
        if not recorded:
            raise NoOptions(symbol, f"recorded with no option expirations in {self._dir(symbol)}")
        path = recorded.get(expiration)
        if path is None:
            raise SourceError(symbol, f"no recording of {expiration} in {self._dir(symbol)}")
        chain = self._answer(symbol, path).chain
        if chain is None or (chain.calls.empty and chain.puts.empty):
            raise EmptyChain(symbol, f"the recording of {expiration} holds no contracts")
        if chain.expiration != expiration:
            raise MalformedResponse(symbol, f"{path.name} holds the chain of {chain.expiration}")
        return chain

    def path_for(self, symbol: str, expiration: date) -> Path | None:
        """Return the recording of one expiration, or None when there is none."""
        return self._recorded(normalise_symbol(symbol)).get(expiration)

    def front_path(self, symbol: str) -> Path:
        """Return the recording that stands for Yahoo's answer without a date.

        That is the earliest recording whose chain is its own first listed expiration (as in
        a real answer without a date), else the earliest recording, else no-date.json.
        """
        symbol = normalise_symbol(symbol)
        recorded = self._recorded(symbol)
        for day in sorted(recorded):
            answer = self._answer(symbol, recorded[day])
            if answer.chain is not None and answer.expirations[:1] == [answer.chain.expiration]:
                return recorded[day]
        if recorded:
            return recorded[min(recorded)]
        return self._dir(symbol) / NO_DATE_FILE

    def _recorded(self, symbol: str) -> dict[date, Path]:
        directory = self._dir(symbol)
        files = self._files(directory)
        if not files:
            raise SourceError(symbol, f"no recording of {symbol} in {self.root}")
        recorded = {}
        for path in files:
            match = _DATE_FILE.fullmatch(path.name)
            if match:
                try:
                    recorded[date.fromisoformat(match.group(1))] = path
                except ValueError:  # 2025-02-30.json is no recording of ours
                    continue
        return recorded

    def _dir(self, symbol: str) -> Path:
        return self.root / symbol

    @staticmethod
    def _files(directory: Path) -> list[Path]:
        if not directory.is_dir():
            return []
        return [
            p
            for p in directory.iterdir()
            if _DATE_FILE.fullmatch(p.name) or p.name in (NO_DATE_FILE, CBOE_FILE)
        ]

    def _cboe(self, symbol: str) -> CboeDocument | None:
        """Return the symbol's Cboe recording, parsed once, or None for the Yahoo layout."""
        path = self._dir(symbol) / CBOE_FILE
        with self._lock:
            document = self._documents.get(path)
        if document is not None or not path.is_file():
            return document
        return self._parse(symbol, path, parse_cboe, self._documents)

    def _answer(self, symbol: str, path: Path) -> V7Answer:
        with self._lock:
            answer = self._answers.get(path)
        return answer if answer is not None else self._parse(symbol, path, parse_v7, self._answers)

    def _parse(
        self, symbol: str, path: Path, parse: Callable[[bytes, str], T], kept: dict[Path, T]
    ) -> T:
        """Return a recorded file parsed, kept for the next asker; errors name the file."""
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise SourceError(symbol, f"cannot read {path}: {exc.strerror}") from exc
        try:
            parsed = parse(body, symbol)
        except SourceError as exc:
            raise exc.reworded(f"{path}: {exc.message}") from exc
        with self._lock:
            kept[path] = parsed
        return parsed
