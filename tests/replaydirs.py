"""Assemble replay directories (Yahoo: <root>/<SYMBOL>/<YYYY-MM-DD>.json; Cboe: cboe.json)."""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from optscan.sources.base import CHAIN_COLUMNS
from optscan.sources.replay import recording_name

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "yahoo-v7"

# Which fixture folder and files make up each named set.
SETS = {
    # AAPL, ten expirations recorded Aug-Oct 2025 (two files are the same 2025-10-31 body).
    "aapl": ("gramistella__yfinance-rs", "options_v7_AAPL*.json"),
    # Fourteen symbols recorded before the open of 2025-02-24, quotes as of the 2025-02-21
    # close: bid = ask = 0 nearly everywhere; AAPL also holds the
    # expired 2022-03-01 (an empty chain) and BTC-USD lists no options at all.
    "premarket": ("gadicc__node-yahoo-finance2", "options-*.json"),
    # AAPL recorded 2016-09-06 after the close.
    "2016": ("pydata__pandas-datareader", "yahoo_options1.json"),
}


def build_replay_dir(dest: Path, name: str) -> Path:
    """Copy the fixture set `name` into dest in the replay layout and return dest."""
    if name not in SETS:
        raise ValueError(f"unknown replay set {name!r}: expected one of {sorted(SETS)}")
    folder, pattern = SETS[name]
    dest.mkdir(parents=True, exist_ok=True)
    sources = sorted((FIXTURES / folder).glob(pattern))
    if not sources:
        raise FileNotFoundError(f"no fixture matches {folder}/{pattern}")
    for source in sources:
        payload = json.loads(source.read_bytes())
        result = payload["optionChain"]["result"][0]
        symbol = result["underlyingSymbol"].upper()
        options = result["options"]
        day = datetime.fromtimestamp(options[0]["expirationDate"], UTC).date() if options else None
        target = dest / symbol / recording_name(day)
        # Two recordings of one day must be the same answer (they may differ in formatting).
        if target.exists() and json.loads(target.read_bytes()) != payload:
            raise ValueError(f"{source.name} and another fixture both claim {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return dest


def clone_symbol(root: Path, source: str, target: str) -> Path:
    """Copy one symbol's recordings under another symbol's name (as Yahoo would answer it)."""
    (root / target).mkdir(parents=True, exist_ok=True)
    for path in sorted((root / source).glob("*.json")):
        payload = json.loads(path.read_bytes())
        for result in payload["optionChain"]["result"]:
            result["underlyingSymbol"] = target
            result["quote"]["symbol"] = target
        (root / target / path.name).write_text(json.dumps(payload))
    return root / target


CBOE_AAPL = Path(__file__).resolve().parent / "fixtures" / "cboe" / "openbb-cboe" / "AAPL.json"


def build_cboe_dir(dest: Path, *, body: bytes | None = None) -> Path:
    """Write AAPL's recorded Cboe document (or `body`) as dest/AAPL/cboe.json; return dest."""
    (dest / "AAPL").mkdir(parents=True, exist_ok=True)
    (dest / "AAPL" / "cboe.json").write_bytes(CBOE_AAPL.read_bytes() if body is None else body)
    return dest


def cboe_body_from_v7(root: Path, symbol: str, front: str) -> bytes:
    """Return a Cboe document holding every contract of a symbol's Yahoo recordings.

    The underlying's quote is the one of the recording `front` (a file name): a Cboe document
    has one quote for all its expirations. Times are written as Cboe writes them: last trades
    in New York wall time, the timestamp in UTC (see optscan/sources/cboedoc.py).
    """
    from optscan.core.market import NEW_YORK

    def wall(epoch: float, zone: Any) -> str:
        return datetime.fromtimestamp(epoch, zone).replace(tzinfo=None).isoformat()

    options = []
    for path in sorted((root / symbol).glob("*.json")):
        result = json.loads(path.read_bytes())["optionChain"]["result"][0]
        for chain in result["options"]:
            for contract in chain["calls"] + chain["puts"]:
                traded = contract.get("lastTradeDate")
                options.append(
                    {
                        "option": contract["contractSymbol"],
                        "bid": contract.get("bid", 0.0),
                        "ask": contract.get("ask", 0.0),
                        "iv": contract.get("impliedVolatility", 0.0),
                        "open_interest": contract.get("openInterest", 0.0),
                        "volume": contract.get("volume", 0.0),
                        "delta": 0.0,
                        "last_trade_price": contract.get("lastPrice", 0.0),
                        "last_trade_time": None if traded is None else wall(traded, NEW_YORK),
                    }
                )
    quote = json.loads((root / symbol / front).read_bytes())["optionChain"]["result"][0]["quote"]
    captured = quote["regularMarketTime"]
    payload = {
        "timestamp": wall(captured + 600, UTC).replace("T", " "),
        "symbol": symbol,
        "data": {
            "symbol": symbol,
            "current_price": quote["regularMarketPrice"],
            "iv30": 25.0,
            "last_trade_time": wall(captured, NEW_YORK),
            "options": options,
        },
    }
    return json.dumps(payload).encode()


def assert_frame_is_contracts(frame: pd.DataFrame, contracts: list[dict]) -> None:
    """Assert a chain side's frame holds exactly the recorded contracts, column by column."""
    assert tuple(frame.columns) == CHAIN_COLUMNS
    assert len(frame) == len(contracts)
    for row, contract in zip(frame.itertuples(index=False), contracts, strict=True):
        assert row.contractSymbol == contract["contractSymbol"]
        for column in CHAIN_COLUMNS[1:]:
            value = getattr(row, column)
            if column in contract:
                assert value == contract[column], (contract["contractSymbol"], column)
            else:
                assert math.isnan(value), (contract["contractSymbol"], column)
