"""One scan job for the web, the CLI and the timer: prepare, run, publish.

`prepare()` checks the market once, takes the lock (so "busy" is answered at once), resolves
the symbols and announces the scan; what it cannot start comes back as a `Refusal` value. The
`ScanJob` it returns then runs in the foreground (`flask scan`) or in a daemon thread
(`start()`: a greenlet under gunicorn's gevent worker, an OS thread under Flask's development
server). Either way the lock is released by its owner in `finally`, and a scan that loses its
lock stops (perform_scan's should_continue).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import redis

from optscan.applog import take_noise
from optscan.core.book import Book, scan_symbols
from optscan.core.market import format_et
from optscan.core.match import Side
from optscan.core.models import ScanResult
from optscan.core.rules import Rules
from optscan.jobs import history
from optscan.jobs.live import LiveScan
from optscan.notify.hook import Delivery, after_scan
from optscan.store.lock import ScanLock, lock_holder
from optscan.store.redisserver import RedisUnavailable

if TYPE_CHECKING:  # the services are built by the Flask app; this module needs only their API
    from optscan.core.scan import Progress
    from optscan.extensions import Services

log = logging.getLogger(__name__)

INTERNAL_ERROR = "The scan stopped because of an internal error; the details are in the server log."
REDIS_DOWN = "Redis is unavailable, so no scan can start; check that the Redis server is running."
NO_SYMBOLS = "There is nothing to scan: no symbol on the watchlist is active."
NO_HOLDINGS = (
    "There is nothing to scan: covered calls need a position of at least 100 shares"
    " (flask positions set, or the Positions page); or scan the symbols not held."
)

RefusalKind = Literal["busy", "market_closed", "no_symbols", "redis", "internal"]

_threads_lock = threading.Lock()
_threads: set[threading.Thread] = set()


def describe_busy(holder: dict[str, Any]) -> str:
    """Return a plain sentence naming who runs the current scan and since when."""
    who = holder.get("trigger", "another process")
    since = holder.get("started_at")
    when = f" since {format_et(datetime.fromisoformat(since))}" if since else ""
    return f"A scan is already running (started by {who}{when}); try again when it finishes."


@dataclass(frozen=True)
class ScanState:
    """What is known about the current scan: from the lock (authoritative) and the snapshot."""

    state: Literal["running", "interrupted", "idle"]
    holder: dict[str, Any] | None  # who holds the lock; None when free
    snapshot: dict[str, Any] | None  # the running scan's snapshot, or the interrupted one

    @property
    def running(self) -> bool:
        """Return whether a scan holds the lock."""
        return self.state == "running"


def current_scan(client: redis.Redis, lock_key: str, snapshot: dict[str, Any] | None) -> ScanState:
    """Combine the lock and the snapshot: a running snapshot without a lock was interrupted."""
    holder = lock_holder(client, lock_key)
    running_snapshot = snapshot if snapshot and snapshot.get("status") == "running" else None
    if holder is not None:
        # The snapshot belongs to this scan only when the ids agree: an old, interrupted
        # snapshot must not pass for the progress of the scan that holds the lock now.
        mine = running_snapshot if running_snapshot and (
            running_snapshot.get("scan_id") == holder.get("scan_id")
        ) else None  # fmt: skip
        return ScanState("running", holder, mine)
    if running_snapshot is not None:
        return ScanState("interrupted", None, running_snapshot)
    return ScanState("idle", None, None)


@dataclass(frozen=True)
class ScanRequest:
    """What to scan, and who asks."""

    side: Side
    force: bool = False
    trigger: str = "web"
    symbols: list[str] | None = None  # None: what the side covers (puts: the active watchlist)
    rules: Rules | None = None  # None: the default rules (the environment's, then the saved)


@dataclass(frozen=True)
class Refusal:
    """Why a scan did not start, in plain words and as a kind."""

    kind: RefusalKind
    message: str
    side: Side
    holder: dict[str, Any] | None = None  # busy: who runs the current scan
    snapshot: dict[str, Any] | None = None  # busy: its progress
    next_open: datetime | None = None  # market_closed


def new_holder(trigger: str, side: Side, now: datetime) -> dict[str, Any]:
    """Return the lock holder description of a new scan, with a fresh scan id."""
    return {
        "trigger": trigger,
        "started_at": now.isoformat(),
        "side": side,
        "scan_id": uuid.uuid4().hex,
    }


def _chain(*callbacks: Progress | None) -> Progress | None:
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def progress(*args: Any) -> None:
        for callback in present:
            callback(*args)

    return progress


@dataclass
class ScanJob:
    """A scan that holds the lock and has been announced; run it once."""

    request: ScanRequest
    lock: ScanLock
    live: LiveScan
    symbols: list[str]
    svc: Services
    event_id: str | None = None  # id of the scan-started event
    rules: Rules | None = None  # the rules it runs with (None: the scan env's)
    one_off: bool = False  # those rules differ from the defaults
    book: Book | None = None  # the positions and cash it sizes rows with
    progress: list[Progress] = field(default_factory=list)
    alert: Delivery | None = None  # the alert on the scan's new matches, once it is stored
    recording: history.Recording | None = None  # the scan's recording in the history

    @property
    def scan_id(self) -> str:
        """Return the scan's id (also in its lock holder and events)."""
        return str(self.lock.holder["scan_id"])

    @property
    def message(self) -> str:
        """Return the sentence that says the scan started."""
        count = len(self.symbols)
        side = self.request.side
        one_off = " with one-off rules" if self.one_off else ""
        return f"Scan started: {count} symbol{'s' if count != 1 else ''}, {side}s{one_off}."

    def run(self, progress: Progress | None = None) -> ScanResult:
        """Run the scan here, publish how it ended and release the lock."""
        # Imported here: the scan's analytics load pandas and scipy, which nothing else needs.
        from optscan.core.scan import perform_scan

        log.info("%s started: %s", self._name, self._what)
        started = time.monotonic()
        try:
            try:
                env = self.svc.scan_env()
                result = perform_scan(
                    self.symbols,
                    self.request.side,
                    True,  # the market was checked once, in prepare()
                    _chain(self.live.progress, progress),
                    env=env,
                    rules=self.rules,
                    trigger=self.request.trigger,
                    # A lost lock means another scan may start: stop before two write results.
                    should_continue=lambda: not self.lock.lost,
                    scan_id=self.scan_id,
                    book=self.book,
                    one_off=self.one_off,
                )
            except BaseException:
                log.exception(
                    "%s failed after %.1f s: internal error", self._name, time.monotonic() - started
                )
                self.live.failed(INTERNAL_ERROR)
                raise
            self.live.finished(result)
            self._log_end(result, time.monotonic() - started)
            self.alert = after_scan(self.svc, result)
            self.recording = history.after_scan(self.svc, result, self.scan_id)
            return result
        finally:
            self.lock.release()

    @property
    def _name(self) -> str:
        return f"scan {self.scan_id[:8]}"

    @property
    def _what(self) -> str:
        count, request = len(self.symbols), self.request
        return f"{count} symbol{'s' if count != 1 else ''}, {request.side}s, by {request.trigger}"

    def _log_end(self, result: ScanResult, seconds: float) -> None:
        # One line per scan with its counts, duration and cause; third-party noise folded in.
        counts = result.counts()
        figures = (
            f"{counts['scanned']} of {counts['symbols']} symbols scanned, {counts['failed']}"
            f" failed, {counts['matches']} matches in {seconds:.1f} s"
        )
        noise = take_noise()
        level, ended = logging.INFO, "finished"
        if not result.success:
            level, ended = logging.WARNING, "interrupted" if result.interrupted else "failed"
        suffix = f" [{noise}]" if noise else ""
        log.log(level, "%s %s (%s): %s%s", self._name, ended, figures, result.message, suffix)

    def start(self) -> None:
        """Run the scan in a daemon thread (a greenlet under gevent); it owns the lock now."""
        thread = threading.Thread(
            target=self._run_in_background, name=f"optscan-scan-{self.scan_id[:8]}", daemon=True
        )
        with _threads_lock:
            _threads.add(thread)
        try:
            thread.start()
        except BaseException:
            with _threads_lock:
                _threads.discard(thread)
            self.live.failed(INTERNAL_ERROR)
            self.lock.release()
            raise

    def _run_in_background(self) -> None:
        try:
            self.run()
        except Exception:  # noqa: BLE001 - run() logged it; nobody waits for this thread
            pass
        finally:
            with _threads_lock:
                _threads.discard(threading.current_thread())


def prepare(svc: Services, request: ScanRequest) -> ScanJob | Refusal:
    """Check the market, take the lock and announce the scan; or say why it cannot start."""
    side = request.side
    lock: ScanLock | None = None
    try:
        now = svc.now()
        if not request.force:
            status = svc.calendar.status(now)
            if not status.is_open:
                return Refusal(
                    "market_closed",
                    f"The market is closed; it next opens {format_et(status.next_open)}."
                    " Force the scan to run anyway.",
                    side,
                    next_open=status.next_open,
                )
        holder = new_holder(request.trigger, side, now)
        lock = svc.scan_lock(holder)
        if not lock.acquire():
            lock = None
            found = current_scan(svc.redis, svc.lock_key, svc.events.get_state())
            busy = found.holder or {}
            return Refusal("busy", describe_busy(busy), side, holder=busy, snapshot=found.snapshot)
        defaults = svc.defaults().rules
        rules = request.rules or defaults
        book = svc.positions.book()
        watchlist = svc.watchlist.active_symbols
        symbols = scan_symbols(side, request.symbols, book, watchlist, rules.calls_unowned)
        if not symbols:
            words = NO_HOLDINGS if side == "call" and not rules.calls_unowned else NO_SYMBOLS
            return Refusal("no_symbols", words, side)
        live = LiveScan(
            svc.events,
            scan_id=holder["scan_id"],
            trigger=request.trigger,
            side=side,
            clock=svc.clock,
        )
        event_id = live.started(symbols)
        job = ScanJob(
            request,
            lock,
            live,
            symbols,
            svc,
            event_id=event_id,
            rules=rules,
            one_off=rules != defaults,
            book=book,
        )
        lock = None  # the job owns it now
        return job
    except (redis.RedisError, RedisUnavailable) as exc:
        log.error("scan not started: Redis is unavailable (%s)", exc)
        return Refusal("redis", REDIS_DOWN, side)
    except Exception:
        log.exception("scan not started")
        return Refusal(
            "internal",
            "The scan could not be started because of an internal error;"
            " the details are in the server log.",
            side,
        )
    finally:
        if lock is not None:
            lock.release()


def wait_for_background_scans(timeout: float) -> bool:
    """Wait until the scans started in this process end; return whether they all did."""
    with _threads_lock:
        pending = list(_threads)
    for thread in pending:
        thread.join(timeout)
    with _threads_lock:
        return not _threads


RunScan = Callable[[ScanJob], ScanResult]
