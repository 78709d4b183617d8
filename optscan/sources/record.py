"""Record raw answers into a replay directory: Yahoo's v7 bodies, or Cboe's one document."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from optscan.core.market import NEW_YORK

from .base import SourceError
from .cboedoc import parse_cboe
from .replay import CBOE_FILE, NO_DATE_FILE, recording_name
from .v7 import expiration_epoch, normalise_symbol, parse_v7

__all__ = ["record", "record_cboe"]


FetchRaw = Callable[[str, int | None], str]


def record(
    root: Path,
    symbols: list[str],
    *,
    fetch_raw: FetchRaw,
    horizon_days: int,
    as_of_date: date | None = None,
) -> dict[str, list[Path] | str]:
    """Record each symbol's expirations within horizon_days (calendar days from as_of_date).

    Without as_of_date the horizon starts on the New York date of the first answer's quote,
    the same rule a scan applies.

    Fetch the answer without a date, then each expiration in [as_of_date, as_of_date +
    horizon_days] it lists (the nearest one comes with the first answer and is not fetched
    again), and write the raw bodies in the replay layout. A symbol is written only once all
    its answers are in and checked, so a replay never holds half a recording; its older
    recordings are then removed. Return, per symbol, the files written or an error message.
    """
    root = Path(root)
    outcome: dict[str, list[Path] | str] = {}
    for requested in symbols:
        try:
            symbol = normalise_symbol(requested)
            bodies = _fetch_symbol(symbol, fetch_raw, horizon_days, as_of_date)
        except SourceError as exc:
            outcome[str(requested).strip().upper()] = f"{exc.kind}: {exc.message}"
            continue
        if not bodies:
            since = as_of_date or "the quote's date"
            outcome[symbol] = f"no expiration within {horizon_days} days of {since}"
            continue
        outcome[symbol] = _write_symbol(root / symbol, bodies)
    return outcome


def record_cboe(
    root: Path, symbols: list[str], *, fetch_raw: Callable[[str], str]
) -> dict[str, list[Path] | str]:
    """Record each symbol's Cboe document as <root>/<SYMBOL>/cboe.json (the raw body, whole).

    A body is written only once it parses as a document for that symbol; the symbol's older
    recordings (either layout) are then removed. Return, per symbol, the file written or an
    error message.
    """
    outcome: dict[str, list[Path] | str] = {}
    for requested in symbols:
        try:
            symbol = normalise_symbol(requested)
            body = fetch_raw(symbol)
            parse_cboe(body, symbol)
        except SourceError as exc:
            outcome[str(requested).strip().upper()] = f"{exc.kind}: {exc.message}"
            continue
        outcome[symbol] = _write_symbol(Path(root) / symbol, {CBOE_FILE: body})
    return outcome


def _fetch_symbol(
    symbol: str, fetch_raw: FetchRaw, horizon_days: int, as_of_date: date | None
) -> dict[str, str]:
    first = fetch_raw(symbol, None)
    listing = parse_v7(first, symbol)
    if not listing.expirations:
        # Keep Yahoo's word that the symbol has no options: the replay answers NoOptions.
        return {NO_DATE_FILE: first}
    if as_of_date is None:
        as_of_date = listing.quote.as_of.astimezone(NEW_YORK).date()
    last_day = as_of_date + timedelta(days=horizon_days)
    bodies: dict[str, str] = {}
    for expiration in listing.expirations:
        if not as_of_date <= expiration <= last_day:
            continue
        if listing.chain is not None and listing.chain.expiration == expiration:
            body = first
        else:
            body = fetch_raw(symbol, expiration_epoch(expiration))
            answered = parse_v7(body, symbol).chain
            if answered is not None and answered.expiration != expiration:
                raise SourceError(
                    symbol, f"asked for {expiration}, Yahoo answered {answered.expiration}"
                )
        bodies[recording_name(expiration)] = body
    return bodies


def _write_symbol(directory: Path, bodies: dict[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [_write_atomically(directory / name, body) for name, body in bodies.items()]
    for stale in directory.glob("*.json"):
        if stale.name not in bodies:
            stale.unlink()
    return written


def _write_atomically(path: Path, body: str) -> Path:
    # A reader (a replay, the emulator) sees the old file or the new one, never a part.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
