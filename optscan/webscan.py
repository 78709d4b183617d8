"""Start scans that publish live events: background for the web, foreground for the CLI.

The caller takes the lock (so "busy" is answered at once and the scan greenlet or thread only
ever releases it), announces the scan, and hands the rest to a daemon thread: under gunicorn's
gevent worker `threading` is monkey-patched, so that thread is a greenlet; under Flask's
development server it is an OS thread. Either way the lock is released by its owner in
`finally`, and a scan that loses its lock stops (perform_scan's should_continue).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import redis

from optscan.live import LiveScan, RenderRows
from optscan.locking import ScanLock, lock_holder
from optscan.market import format_et
from optscan.redisserver import RedisUnavailable
from optscan.rules import Rules, Side
from optscan.scanner import Progress, ScanEnv, ScanResult, perform_scan
from optscan.watchlist import normalize_symbols

if TYPE_CHECKING:  # the services are built by the Flask app; this module needs only their API
    from optscan.extensions import Services

log = logging.getLogger(__name__)

INTERNAL_ERROR = "The scan stopped because of an internal error; the details are in the server log."
REDIS_DOWN = "Redis is unavailable, so no scan can start; check that the Redis server is running."

OutcomeKind = Literal["started", "busy", "market_closed", "error"]

_threads_lock = threading.Lock()
_threads: set[threading.Thread] = set()


class ScanBusy(Exception):
    """Another scan holds the lock."""

    def __init__(self, holder: dict[str, Any] | None):
        self.holder = holder or {}
        super().__init__(describe_busy(self.holder))


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
class ScanOutcome:
    """How a request to start a scan ended."""

    kind: OutcomeKind
    message: str
    side: Side
    holder: dict[str, Any] | None = None  # busy: who runs the current scan
    snapshot: dict[str, Any] | None = None  # busy: its progress; started: the first snapshot
    next_open: datetime | None = None  # market_closed
    reason: str | None = None  # error: "redis", "no_symbols" or "internal"
    symbols: list[str] = field(default_factory=list)  # started
    scan_id: str | None = None
    event_id: str | None = None  # started: id of the scan-started event


def new_holder(trigger: str, side: Side, now: datetime) -> dict[str, Any]:
    """Return the lock holder description of a new scan, with a fresh scan id."""
    return {
        "trigger": trigger,
        "started_at": now.isoformat(),
        "side": side,
        "scan_id": uuid.uuid4().hex,
    }


def _wanted(symbols: list[str] | None, env: ScanEnv) -> list[str]:
    return normalize_symbols(symbols) if symbols is not None else env.watchlist.active_symbols()


def _chain(*callbacks: Callable[..., None] | None) -> Progress | None:
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def progress(*args: Any) -> None:
        for callback in present:
            callback(*args)

    return progress


def execute(
    lock: ScanLock,
    live: LiveScan | None,
    *,
    symbols: list[str],
    side: Side,
    force: bool,
    env: ScanEnv,
    rules: Rules | None = None,
    trigger: str,
    progress: Progress | None = None,
) -> ScanResult:
    """Run perform_scan under a lock already taken, publish how it ended, release the lock."""
    try:
        try:
            result = perform_scan(
                symbols,
                side,
                force,
                _chain(live.progress if live else None, progress),
                env=env,
                rules=rules,
                trigger=trigger,
                # A lost lock means another scan may start: stop before two write results.
                should_continue=lambda: not lock.lost,
            )
        except BaseException:
            if live is not None:
                live.failed(INTERNAL_ERROR)
            raise
        if live is not None:
            live.finished(result)
        return result
    finally:
        lock.release()


def run_live_exclusive(
    lock: ScanLock,
    make_live: Callable[[], LiveScan],
    *,
    symbols: list[str] | None,
    side: Side,
    force: bool,
    env: ScanEnv,
    rules: Rules | None = None,
    trigger: str,
    progress: Progress | None = None,
) -> ScanResult:
    """Take the lock or raise ScanBusy, then run the scan in this thread with live events."""
    if not lock.acquire():
        raise ScanBusy(lock_holder(lock.client, lock.key))
    try:
        wanted = _wanted(symbols, env)
        # A scan perform_scan will refuse (market closed, nothing to scan) is not announced:
        # an open page should not flash "scan started" for it.
        runs = bool(wanted) and (force or env.calendar.is_market_open(env.clock()))
        live = make_live() if runs else None
        if live is not None:
            live.started(wanted)
    except BaseException:
        lock.release()
        raise
    return execute(
        lock,
        live,
        symbols=wanted,
        side=side,
        force=force,
        env=env,
        rules=rules,
        trigger=trigger,
        progress=progress,
    )


def _run_in_background(lock: ScanLock, live: LiveScan, **kwargs: Any) -> None:
    try:
        execute(lock, live, **kwargs)
    except Exception:  # noqa: BLE001 - nobody awaits this thread: the log is where it goes
        log.exception("background scan %s failed", live.scan_id)
    finally:
        with _threads_lock:
            _threads.discard(threading.current_thread())


def start_scan(
    svc: Services,
    render_rows: RenderRows,
    *,
    side: Side,
    force: bool,
    trigger: str = "web",
    symbols: list[str] | None = None,
) -> ScanOutcome:
    """Start a scan in the background unless the market is closed or a scan already runs."""
    lock: ScanLock | None = None
    try:
        now = svc.now()
        status = svc.calendar.status(now)
        if not force and not status.is_open:
            return ScanOutcome(
                "market_closed",
                "The market is closed.",
                side,
                next_open=status.next_open,
            )
        holder = new_holder(trigger, side, now)
        lock = svc.scan_lock(holder)
        if not lock.acquire():
            found = current_scan(svc.redis, svc.lock_key, svc.events.get_state())
            busy_holder = found.holder or {}
            lock = None
            return ScanOutcome(
                "busy",
                describe_busy(busy_holder),
                side,
                holder=busy_holder,
                snapshot=found.snapshot,
            )
        env = svc.scan_env()
        wanted = _wanted(symbols, env)
        if not wanted:
            lock.release()
            lock = None
            return ScanOutcome(
                "error",
                "There is nothing to scan: no symbol on the watchlist is active.",
                side,
                reason="no_symbols",
            )
        live = LiveScan(
            svc.events,
            render_rows,
            scan_id=holder["scan_id"],
            trigger=trigger,
            side=side,
            clock=svc.clock,
        )
        event_id = live.started(wanted)
        thread = threading.Thread(
            target=_run_in_background,
            args=(lock, live),
            kwargs={
                "symbols": wanted,
                "side": side,
                "force": force,
                "env": env,
                "trigger": trigger,
            },
            name=f"optscan-scan-{holder['scan_id'][:8]}",
            daemon=True,
        )
        with _threads_lock:
            _threads.add(thread)
        try:
            thread.start()
        except BaseException:
            with _threads_lock:
                _threads.discard(thread)
            live.failed(INTERNAL_ERROR)
            raise
        lock = None  # the thread owns it now
        return ScanOutcome(
            "started",
            f"Scan started: {len(wanted)} symbol{'s' if len(wanted) != 1 else ''}, {side}s.",
            side,
            snapshot=live.snapshot,
            symbols=wanted,
            scan_id=holder["scan_id"],
            event_id=event_id,
        )
    except (redis.RedisError, RedisUnavailable) as exc:
        log.error("scan not started: Redis is unavailable (%s)", exc)
        return ScanOutcome("error", REDIS_DOWN, side, reason="redis")
    except Exception:  # noqa: BLE001 - the page gets plain words, the log the details
        log.exception("scan not started")
        return ScanOutcome(
            "error",
            "The scan could not be started because of an internal error;"
            " the details are in the server log.",
            side,
            reason="internal",
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
