"""Option-chain sources: live Yahoo (through yfinance), live Cboe, replays, and fallbacks."""

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
    "LIVE_KINDS",
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
    "split_spec",
]

SOURCE_SPECS = ("yahoo", "yahoo:<base URL>", "cboe", "cboe:<base URL>", "replay:<dir>")
LIVE_KINDS = ("yahoo", "cboe")


def split_spec(spec: object) -> list[tuple[str, str]]:
    """Return the (kind, argument) of each source a spec names, or raise ValueError.

    A spec is one source ("yahoo", "yahoo:<base URL>", "cboe", "cboe:<base URL>",
    "replay:<dir>") or several separated by commas, tried in that order per symbol.
    """
    parts = spec.split(",") if isinstance(spec, str) else [""]
    found: list[tuple[str, str]] = []
    for part in parts:
        kind, colon, argument = part.strip().partition(":")
        live_ok = kind in LIVE_KINDS and (not colon or argument.startswith(("http://", "https://")))
        if not (live_ok or (kind == "replay" and argument)):
            expected = ", ".join(SOURCE_SPECS)
            raise ValueError(
                f"unknown source {part.strip()!r}: expected one of {expected},"
                " or several of them separated by commas"
            )
        if kind in (k for k, _ in found):
            raise ValueError(f"source {kind!r} named twice in {spec!r}")
        found.append((kind, argument))
    return found


def make_source(
    spec: str,
    *,
    cache_dir: Path,
    timeout: float = 10.0,
    policy: FetchPolicy | None = None,
    memo: YahooMemo | None = None,
    cboe_policy: FetchPolicy | None = None,
) -> OptionSource:
    """Return the source a spec names (see split_spec); several make a FallbackSource.

    timeout (seconds per request) applies to the live sources; policy (pacing, retries) and
    memo (calendar dates, unknown symbols) to Yahoo's; cboe_policy to Cboe's, which also
    reads the calendar dates the memo holds.
    """
    named = [
        (kind, _one(kind, argument, cache_dir, timeout, policy, memo, cboe_policy))
        for kind, argument in split_spec(spec)
    ]
    if len(named) == 1:
        return named[0][1]
    from .fallback import FallbackSource

    return FallbackSource(named)


def _one(
    kind: str,
    argument: str,
    cache_dir: Path,
    timeout: float,
    policy: FetchPolicy | None,
    memo: YahooMemo | None,
    cboe_policy: FetchPolicy | None,
) -> OptionSource:
    # Imported here so that a replay-only process never loads yfinance and curl_cffi.
    if kind == "yahoo":
        from .yahoo import YahooSource

        return YahooSource(
            cache_dir, base_url=argument or None, timeout=timeout, policy=policy, memo=memo
        )
    if kind == "cboe":
        from .cboe import CboeSource

        return CboeSource(base_url=argument or None, timeout=timeout, policy=cboe_policy, memo=memo)
    from .replay import ReplaySource

    return ReplaySource(Path(argument))
