"""(2b) Chain pipeline: raw v7 bodies to rows, as a scan runs it, in contracts per second.

The ten recorded AAPL bodies (one per expiration, Aug-Oct 2025) stand for one symbol; a run
takes `symbols` copies of them through the whole path a scan runs per symbol: parse each body
(JSON, shape and type checks, arrays), then one vectorised pass over the symbol's chains
(forward per expiration, Black-76 IV from the mid, delta, POP, flags), the rules, and the Match
dicts of the rows kept. Contracts counted are those of the side analysed (puts), as a scan's
`contracts` counts them; every valid contract passes the rules (min return 0, |delta| <= 1),
so every row is built. Single-threaded, in this process; median of the runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

from bench.report import Table, count, median, ratio
from optscan.core.chain import analyze_chain, analyze_chains
from optscan.core.rules import Rules, select
from optscan.sources.base import Chain
from optscan.sources.v7 import load_body, parse_v7
from tests.replaydirs import FIXTURES

RATE = 0.045
RULES = Rules(put_min_return_pct=0.0, put_max_delta=1.0)
Step = Callable[[list[bytes]], int]  # one symbol's bodies -> put contracts analysed


def recorded_bodies() -> list[bytes]:
    """Return the ten distinct recorded AAPL bodies (one per expiration)."""
    folder = FIXTURES / "gramistella__yfinance-rs"
    return [Path(p).read_bytes() for p in sorted(folder.glob("options_v7_AAPL_*.json"))]


def iv_gaps(chain: Chain, *, market: bool) -> dict[float, float]:
    """Return |IV_call - IV_put| per strike where both legs have an IV solved from the mid.

    market=False prices off spot and the quoted dividend yield, as optscan did before the
    market-implied forward: each side is analysed without the other, so no strike pairs up and
    the forward falls back to S e^{(r - q) T}.
    """
    if market:
        calls = analyze_chain(chain, "call", risk_free_rate=RATE)
        puts = analyze_chain(chain, "put", risk_free_rate=RATE)
    else:
        none = chain.puts.take([])
        calls = analyze_chain(dataclasses.replace(chain, puts=none), "call", risk_free_rate=RATE)
        puts = analyze_chain(dataclasses.replace(chain, calls=none), "put", risk_free_rate=RATE)
    call_iv = {
        k: v
        for k, v, solved in zip(calls.strike, calls.iv, calls.iv_from_mid, strict=True)
        if solved and not math.isnan(v)
    }
    return {
        k: abs(call_iv[k] - v)
        for k, v, solved in zip(puts.strike, puts.iv, puts.iv_from_mid, strict=True)
        if solved and not math.isnan(v) and k in call_iv
    }


def iv_agreement(near: float = 0.05) -> dict[str, tuple[list[float], list[float]]]:
    """Return {strikes: (gaps before, gaps after)} over the recorded AAPL chains.

    Strikes: "all" where both legs have a mid IV, and "near" those within `near` of spot.
    """
    found: dict[str, tuple[list[float], list[float]]] = {"all": ([], []), "near": ([], [])}
    for body in recorded_bodies():
        chain = _chain(body)
        before, after = iv_gaps(chain, market=False), iv_gaps(chain, market=True)
        for k in sorted(before.keys() & after.keys()):
            groups = ["all"] + (["near"] if abs(k / chain.quote.price - 1) <= near else [])
            for group in groups:
                found[group][0].append(before[k])
                found[group][1].append(after[k])
    return found


def _chain(body: bytes | dict) -> Chain:
    chain = parse_v7(body, "AAPL").chain
    assert chain is not None
    return chain


def whole_symbol(bodies: list[bytes]) -> int:
    """Parse each body, then analyse the symbol's chains in one pass (what a scan does)."""
    rows = analyze_chains([_chain(b) for b in bodies], "put", risk_free_rate=RATE)
    rows.records(select(rows, "put", RULES))
    return len(rows)


def per_expiration(bodies: list[bytes]) -> int:
    """As whole_symbol, but one analysis pass per expiration."""
    analysed = 0
    for body in bodies:
        rows = analyze_chain(_chain(body), "put", risk_free_rate=RATE)
        rows.records(select(rows, "put", RULES))
        analysed += len(rows)
    return analysed


def timed(step: Step, bodies: list[bytes], symbols: int, runs: int) -> tuple[float, float, int]:
    """Return (median wall s, median CPU s of a run over `symbols` symbols, contracts per run)."""
    step(bodies)  # warm up: imports, caches
    walls, cpus, contracts = [], [], 0
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        contracts = sum(step(bodies) for _ in range(symbols))
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return median(walls), median(cpus), contracts


def run(smoke: bool = False) -> list[Table]:
    """Time the pipeline, whole and in variants, and return the table."""
    symbols, runs = (2, 1) if smoke else (50, 7)
    bodies = recorded_bodies()
    parsed = [_chain(b) for b in bodies]

    def parse_only(batch: list[bytes]) -> int:
        return sum(len(_chain(b).puts) for b in batch)

    def analysis_only(_: list[bytes]) -> int:
        rows = analyze_chains(parsed, "put", risk_free_rate=RATE)
        rows.records(select(rows, "put", RULES))
        return len(rows)

    cases: list[tuple[str, Step]] = [
        ("whole pipeline: one analysis pass per symbol (as a scan)", whole_symbol),
        ("whole pipeline, one analysis pass per expiration", per_expiration),
        ("parsing alone (typed decoding, checks, arrays; calls and puts)", parse_only),
        ("analysis alone (forward, IV, delta, POP, flags, rules, rows)", analysis_only),
    ]
    table = Table(
        f"(2b) Chain pipeline: raw v7 bodies to rows, {symbols} symbols x {len(bodies)}"
        f" expirations, median of {runs}",
        [
            "case",
            "put contracts",
            "wall s",
            "contracts/s (wall)",
            "CPU s",
            "contracts/s (CPU)",
            "vs the whole pipeline (CPU)",
            "CPU us per body",
        ],
    )
    whole = None
    for name, step in cases:
        wall, cpu, contracts = timed(step, bodies, symbols, runs)
        whole = whole or contracts / cpu
        table.add(
            name,
            count(contracts),
            f"{wall:.3f}",
            count(contracts / wall),
            f"{cpu:.3f}",
            count(contracts / cpu),
            ratio(contracts / cpu / whole),
            f"{cpu / (symbols * len(bodies)) * 1e6:.0f}",
        )
    table.notes += [
        "CPU: this process's CPU time (time.process_time) over the same runs; on this shared"
        " 2-core machine other processes stretch the wall time, not the CPU time.",
        "Contracts: the put contracts analysed (each body also holds its calls, which are"
        " parsed too and feed the forward); every one is priced, flagged and, when valid,"
        " made into a row (rules: min return 0, |delta| <= 1).",
        "CPU us per body: the run's CPU time over the bodies it handled (one body = one"
        " expiration, ~110 contracts of both sides).",
        "Before this pipeline (json, per-value checks, pandas frames per chain, one analysis"
        " per expiration), the issue measured ~12,000 contracts/s end to end on this machine.",
    ]
    return [table, _decoders_table(bodies, 2 if smoke else 200), _agreement_table()]


def _decoders_table(bodies: list[bytes], repeats: int) -> Table:
    decoders: list[tuple[str, Callable[[bytes], object] | None]] = [
        ("json (standard library), to dicts", json.loads),
        ("orjson, to dicts", _optional_orjson()),
        ("msgspec, to dicts", msgspec.json.decode),
        ("msgspec, typed V7Body (optscan: types checked, unread fields skipped)", load_v7),
    ]
    table = Table(
        f"(2b) Decoding the {len(bodies)} recorded bodies ({sum(map(len, bodies)) // len(bodies):,}"
        f" bytes each on average), CPU us per body, best of 5 x {repeats}",
        ["decoder", "us per body", "vs json"],
    )
    baseline = None
    for name, decode in decoders:
        if decode is None:
            table.add(name, "not installed", "-")
            continue
        best = math.inf
        for _ in range(5):
            started = time.process_time()
            for _ in range(repeats):
                for body in bodies:
                    decode(body)
            best = min(best, (time.process_time() - started) / repeats / len(bodies))
        baseline = baseline or best
        table.add(name, f"{best * 1e6:.0f}", ratio(baseline / best))
    table.notes += [
        "To dicts, a decoder leaves the checks (every contract's numbers are numbers, its"
        " strike is there) and the dict lookups to Python; the typed decoder does both as it"
        " decodes. After decoding, optscan turns the contracts into arrays (the parsing row of"
        " the table above includes that).",
    ]
    return table


def load_v7(body: bytes) -> object:
    """Decode a body as optscan does."""
    return load_body("AAPL", body)


def _optional_orjson() -> Callable[[bytes], object] | None:
    try:
        import orjson
    except ImportError:
        return None
    return orjson.loads


def _agreement_table() -> Table:
    table = Table(
        "(2c) Call and put IVs at the same strike, the ten recorded AAPL expirations",
        [
            "strikes",
            "pairs",
            "median abs(IV call - IV put) before",
            "after",
            "p90 before",
            "p90 after",
        ],
    )
    for group, (before, after) in iv_agreement().items():
        table.add(
            "all with both mids" if group == "all" else "near the money (K within 5 % of spot)",
            len(before),
            f"{np.median(before) * 100:.2f} vol pts",
            f"{np.median(after) * 100:.2f} vol pts",
            f"{np.quantile(before, 0.9) * 100:.2f}",
            f"{np.quantile(after, 0.9) * 100:.2f}",
        )
    table.notes += [
        "before: priced off spot, the configured rate (4.5 %) and Yahoo's dividend yield;"
        " after: Black-76 on each expiration's market-implied forward.",
        "Pairs: strikes where the call's and the put's IV are both solved from a two-sided mid;"
        " far from the money one leg is deep in the money, with wide spreads and (American"
        " options) early-exercise value, and its IV says more about the quote than the model.",
    ]
    return table
