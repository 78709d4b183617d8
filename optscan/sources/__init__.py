"""Option-chain sources: live Yahoo (through yfinance) and replays of recorded Yahoo answers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import (
    CHAIN_COLUMNS,
    Chain,
    Contracts,
    EmptyChain,
    MalformedResponse,
    NoOptions,
    OptionSource,
    Quote,
    RateLimited,
    SourceError,
    UnknownSymbol,
    Unreachable,
)
from .policy import FetchPolicy

if TYPE_CHECKING:
    from optscan.store.yahoomemo import YahooMemo

__all__ = [
    "CHAIN_COLUMNS",
    "SOURCE_SPECS",
    "Chain",
    "Contracts",
    "EmptyChain",
    "FetchPolicy",
    "MalformedResponse",
    "NoOptions",
    "OptionSource",
    "Quote",
    "RateLimited",
    "SourceError",
    "UnknownSymbol",
    "Unreachable",
    "make_source",
]

SOURCE_SPECS = ("yahoo", "yahoo:<base URL>", "replay:<dir>")


def make_source(
    spec: str,
    *,
    cache_dir: Path,
    timeout: float = 10.0,
    policy: FetchPolicy | None = None,
    memo: YahooMemo | None = None,
) -> OptionSource:
    """Return the source a spec names: "yahoo", "yahoo:<base URL>" or "replay:<dir>".

    timeout (seconds per request), policy (pacing, retries) and memo (calendar dates, unknown
    symbols) apply to the live source only.
    """
    # Imported here so that a replay-only process never loads yfinance and curl_cffi.
    kind, colon, argument = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if kind == "yahoo" and bool(colon) == bool(argument):
        from .yahoo import YahooSource

        return YahooSource(
            cache_dir, base_url=argument or None, timeout=timeout, policy=policy, memo=memo
        )
    if kind == "replay" and argument:
        from .replay import ReplaySource

        return ReplaySource(Path(argument))
    raise ValueError(f"unknown source {spec!r}: expected one of {', '.join(SOURCE_SPECS)}")
