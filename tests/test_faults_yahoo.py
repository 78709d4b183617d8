"""Yahoo misbehaving (429 storms, 500s, timeouts, malformed answers), served by the emulator to
`flask scan` of the real app on a real Redis: the scan completes with per-symbol errors, and
a scan that cannot complete never replaces the previous results."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date

import pytest

from optscan.sources.v7 import expiration_epoch
from tests.faults import SECRET_KEY, alias_names
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import OPTIONS_PREFIX, YahooEmulator

# Real fetch timeouts, backoffs and breaker pauses: seconds of waiting by design.
pytestmark = pytest.mark.slow

FETCH_TIMEOUT_S = 1.0
BREAKER_PAUSE_S = 1.0
MAX_RETRIES = 2  # so a failing request is sent 3 times
# Fast but real policy: backoff steps of 0.05-0.2 s, a 1 s timeout, a 1 s breaker pause.
POLICY = {
    "FETCH_TIMEOUT_SECONDS": FETCH_TIMEOUT_S,
    "YAHOO_MAX_RETRIES": MAX_RETRIES,
    "YAHOO_BACKOFF_BASE_SECONDS": 0.05,
    "YAHOO_BACKOFF_CAP_SECONDS": 0.2,
    "YAHOO_BREAKER_THRESHOLD": 3,
    "YAHOO_BREAKER_PAUSE_SECONDS": BREAKER_PAUSE_S,
    "YAHOO_RATE_PER_SECOND": 1000,
    "YAHOO_BURST": 1000,
    "SCAN_CONCURRENCY": 4,
}
GOOD = alias_names("G", 4)
# symbol -> (fault, status the scan must report, words its error must contain)
FAULTY = {
    "E0": ("500", "error", "HTTP 500"),
    "T0": ("hang", "error", f"did not answer within {FETCH_TIMEOUT_S:g} s"),
    "M0": ("truncated", "malformed", "not JSON"),
    "M1": ("html", "malformed", "not JSON"),
    "M2": ("not_v7", "malformed", "no optionChain"),
    "N0": ("404", "unknown_symbol", "Yahoo does not know N0"),
}
PARTIAL = "P0"  # one expiration answers 500, the others are fine
BLIP = "S0"  # two 429s, then fine: retried to success
SYMBOLS = [*GOOD, *FAULTY, PARTIAL, BLIP]


@pytest.fixture(scope="module")
def yahoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YahooEmulator]:
    root = build_replay_dir(tmp_path_factory.mktemp("replay"), "aapl")
    # A hang outlasts the fetch timeout by far: the scan's own timeout must end it.
    aliases = dict.fromkeys(SYMBOLS, "AAPL")
    with YahooEmulator(root, aliases=aliases, hang_seconds=120) as emulator:
        yield emulator


@pytest.fixture
def app(make_app, yahoo: YahooEmulator):
    yahoo.clear_faults()
    yahoo.reset_hits()
    app = make_app(SOURCE=f"yahoo:{yahoo.base_url}", SECRET_KEY=SECRET_KEY, **POLICY)
    watchlist = app.extensions["optscan"].watchlist
    watchlist.remove([e.symbol for e in watchlist.entries()])
    watchlist.add(SYMBOLS)
    yield app
    yahoo.clear_faults()


def scan(app, *args: str) -> tuple[int, dict, float]:
    """Run `flask scan --force --json ARGS`; return its exit code, its JSON and the wall time."""
    started = time.monotonic()
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--json", *args])
    wall = time.monotonic() - started
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout), wall


def stored(app) -> tuple[str | None, str | None]:
    """Return the raw stored last good put scan and last put attempt."""
    svc = app.extensions["optscan"]
    prefix = svc.settings.redis_prefix
    return svc.redis.get(f"{prefix}scan:last:put"), svc.redis.get(f"{prefix}scan:attempt:put")


def option_hits(yahoo: YahooEmulator) -> list:
    """Return the options requests the emulator received (not the cookie and crumb)."""
    return [h for h in yahoo.hits if h.path.startswith(OPTIONS_PREFIX)]


def by_symbol(matches: list[dict]) -> dict[str, list[dict]]:
    """Group matches by symbol, dropping the fields that name the symbol."""
    found: dict[str, list[dict]] = {}
    for match in matches:
        rest = {k: v for k, v in match.items() if k not in ("symbol", "contract")}
        found.setdefault(match["symbol"], []).append(rest)
    return found


def test_a_scan_with_every_kind_of_fault_completes_with_per_symbol_errors(app, yahoo) -> None:
    code, baseline, _ = scan(app)
    assert code == 0 and baseline["counts"]["scanned"] == len(SYMBOLS)
    reference = by_symbol(baseline["matches"])
    assert all(reference[s] for s in SYMBOLS)  # AAPL's recordings give puts that pass
    second = date.fromisoformat(baseline["symbols"][PARTIAL]["expirations"][1])
    yahoo.reset_hits()

    for symbol, (kind, _, _) in FAULTY.items():
        yahoo.inject(kind, path=f"/{symbol}$")
    yahoo.inject("500", path=f"/{PARTIAL}$", date=expiration_epoch(second))
    yahoo.inject("429", path=f"/{BLIP}$", times=2)
    code, result, wall = scan(app)
    previous, _ = stored(app)

    assert code == 0 and result["success"] is True
    statuses = {s: r["status"] for s, r in result["symbols"].items()}
    for symbol, (_, status, words) in FAULTY.items():
        assert statuses[symbol] == status, (symbol, result["symbols"][symbol])
        assert words in result["symbols"][symbol]["error"]
        assert symbol not in by_symbol(result["matches"])
    mine = by_symbol(result["matches"])
    for symbol in [*GOOD, BLIP]:
        assert statuses[symbol] == "ok" and mine[symbol] == reference[symbol], symbol
    assert (
        statuses[PARTIAL] == "partial" and second.isoformat() in result["symbols"][PARTIAL]["error"]
    )
    assert mine[PARTIAL] == [m for m in reference[PARTIAL] if m["expiration"] != str(second)]
    assert result["counts"]["failed"] == len(FAULTY)
    assert result["message"].endswith(
        f"Failed: {', '.join(sorted(FAULTY))}; the previous results of {len(FAULTY)} of them"
        " are kept."
    )
    # Each failing request was sent once plus its retries; answers that will not change
    # (404, malformed) only once.
    hits = Counter(h.path.rsplit("/", 1)[-1] for h in option_hits(yahoo))
    assert hits["E0"] == hits["T0"] == 1 + MAX_RETRIES
    assert hits["M0"] == hits["M1"] == hits["M2"] == hits["N0"] == 1
    assert hits[BLIP] == hits[GOOD[0]] + 2
    # The hung requests were given up on by the scan while the emulator still hung.
    assert {h.status for h in option_hits(yahoo) if h.path.endswith("/T0")} == {-1}
    # The completed scan is the new last result, with its failures on the page.
    assert json.loads(previous)["finished_at"] == result["finished_at"]
    page = app.test_client().get("/")
    assert page.status_code == 200 and "Not scanned in the last put scan" in page.text
    skipped = page.text.split('id="last-skipped"', 1)[1].split("</div>", 1)[0]
    for symbol in FAULTY:
        assert symbol in skipped
    # Each failed symbol keeps its earlier rows on the board, marked with the failure.
    board = app.extensions["optscan"].store.board("put")
    assert all(board[s]["scan_id"] != board[GOOD[0]]["scan_id"] for s in FAULTY)
    print(
        f"\nmixed faults: {len(SYMBOLS)} symbols in {wall:.2f} s,"
        f" {len(option_hits(yahoo))} requests,"
        f" statuses {dict(Counter(statuses.values()))}"
    )


@pytest.mark.parametrize("kind", ["429", "500", "hang", "truncated", "html"])
def test_a_scan_that_fails_everywhere_keeps_the_previous_results(app, yahoo, kind: str) -> None:
    code, good, _ = scan(app, "--symbols", ",".join(GOOD))
    assert code == 0 and good["success"]
    last_before, _ = stored(app)
    yahoo.reset_hits()
    yahoo.inject(kind)  # every options request, every symbol
    code, result, wall = scan(app, "--symbols", ",".join(GOOD))
    last_after, attempt = stored(app)

    assert code == 1 and result["success"] is False
    assert result["message"].startswith(f"Scan failed: none of the {len(GOOD)} symbols")
    assert result["message"].endswith(f"the previous results of {len(GOOD)} of them are kept.")
    assert last_after == last_before  # byte for byte
    assert json.loads(attempt)["finished_at"] == result["finished_at"]
    expected = {"429": "rate_limited", "500": "error", "hang": "error"}.get(kind, "malformed")
    assert {r["status"] for r in result["symbols"].values()} == {expected}
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and "The last put scan failed" in page.text
    assert page.text.count('data-symbol="') >= len(good["matches"])  # the old rows, still shown
    downloaded = client.get("/results.json?side=put").get_json()
    assert downloaded["last_scan"] == json.loads(last_before)
    assert downloaded["matches"] == good["matches"]  # every row of the good scan, unchanged
    requests = len(option_hits(yahoo))
    # Bounded effort: never more than one first request per symbol plus its retries.
    assert requests <= len(GOOD) * (1 + MAX_RETRIES)
    print(f"\nall {kind}: failed in {wall:.2f} s after {requests} requests")


class _EndStormOnTrip(logging.Handler):
    """End the emulator's 429 storm when the breaker trips: a storm shorter than the pause."""

    def __init__(self, yahoo: YahooEmulator):
        super().__init__()
        self.yahoo = yahoo
        self.tripped_at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.tripped_at is None and "pausing requests" in record.getMessage():
            self.tripped_at = time.monotonic()
            self.yahoo.clear_faults()


def test_a_429_storm_shorter_than_the_pause_is_waited_out(app, yahoo) -> None:
    code, baseline, _ = scan(app)
    assert code == 0
    yahoo.reset_hits()
    yahoo.inject("429")  # every request, until the breaker trips
    ender = _EndStormOnTrip(yahoo)
    breaker_log = logging.getLogger("optscan.sources.policy")
    breaker_log.addHandler(ender)
    try:
        code, result, wall = scan(app)
    finally:
        breaker_log.removeHandler(ender)
    assert ender.tripped_at is not None, "the breaker never tripped"
    assert code == 0 and result["success"] is True
    assert {r["status"] for r in result["symbols"].values()} == {"ok"}
    assert by_symbol(result["matches"]) == by_symbol(baseline["matches"])
    limited = [h for h in option_hits(yahoo) if h.status == 429]
    answered = sorted(h.at for h in option_hits(yahoo) if h.status == 200)
    # The breaker paused every request: apart from those already on their way when it tripped
    # (one per worker at most), nothing went out before the pause was over.
    paused_until = limited[0].at + BREAKER_PAUSE_S
    workers = POLICY["SCAN_CONCURRENCY"]
    assert all(at >= paused_until for at in answered[workers:])
    assert len(limited) <= 3 + 4 * (1 + MAX_RETRIES)  # threshold + what was in flight
    print(
        f"\n429 storm until the trip: completed in {wall:.2f} s, {len(limited)} x 429,"
        f" {len(answered)} answered"
    )


def test_a_429_storm_that_outlasts_the_pause_stops_the_asking(app, yahoo) -> None:
    code, _, _ = scan(app)
    assert code == 0
    last_before, _ = stored(app)
    yahoo.reset_hits()
    yahoo.inject("429")
    code, result, wall = scan(app)
    assert code == 1 and result["success"] is False
    assert {r["status"] for r in result["symbols"].values()} == {"rate_limited"}
    assert stored(app)[0] == last_before
    # One pause, then the breaker opens for good: no symbol waits out its own retries (the
    # requests, not the time, show it: fewer than one per symbol).
    requests = len(option_hits(yahoo))
    assert requests < len(SYMBOLS)
    print(
        f"\npersistent 429 on {len(SYMBOLS)} symbols: gave up in {wall:.2f} s, {requests} requests"
    )
