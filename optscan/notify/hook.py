"""After a completed scan: alert on its new matches, off the scan's path, never failing it.

`after_scan` is called by the scan job once the result is stored. It starts a daemon thread (a
greenlet under gevent) that claims the matches not alerted within the repeat window, sends one
message listing the best of them, and records the outcome (a failure gives the claimed
contracts back, so the next scan tries again). The web never waits for it; `flask scan` waits
after printing its result, for a bounded time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optscan.core.match import Match
from optscan.core.models import ScanResult
from optscan.core.newness import contract_key
from optscan.jobs.background import AfterScan, start_after_scan
from optscan.notify.ledger import AlertLedger
from optscan.notify.message import new_matches_message, page_link, probe_message
from optscan.notify.send import AlertFailed, deliver

if TYPE_CHECKING:  # built by the Flask app; this module needs only its API
    from optscan.extensions import Services

log = logging.getLogger(__name__)

GRACE_SECONDS = 2.0  # beyond the send timeout, for the Redis calls around it


class Delivery(AfterScan):
    """One alert on its way in a daemon thread; `outcome` is set when it is done."""

    def __init__(self, work: Callable[[], dict[str, Any] | None], limit: float):
        """Prepare `work`, which may take `limit` seconds all told; `start` sets it going."""
        super().__init__("optscan-alert", limit)
        self.outcome: dict[str, Any] | None = None
        self._work = work

    def _run(self) -> None:
        try:
            self.outcome = self._work()
        except Exception as exc:  # noqa: BLE001 - an alert never fails a scan, nor the process
            log.error("alert not sent: %s: %s", type(exc).__name__, exc)
            self.outcome = {"ok": False, "reason": f"internal error ({type(exc).__name__})"}


def after_scan(svc: Services, result: ScanResult) -> Delivery | None:
    """Start alerting on a completed scan's new matches; None when there is nothing to do."""
    settings = svc.settings
    if not settings.notify_urls or not result.success or not result.matches:
        return None
    matches = list(result.matches)
    limit = settings.notify_timeout_seconds + GRACE_SECONDS
    return start_after_scan(
        lambda: Delivery(lambda: alert_new(svc, result.side, matches), limit), log, "alert"
    )


def alert_new(svc: Services, side: str, matches: list[Match]) -> dict[str, Any] | None:
    """Send one message on the matches not alerted within the window; return the outcome."""
    settings = svc.settings
    ledger = AlertLedger(svc.redis, settings.redis_prefix)
    by_key = {contract_key(m): m for m in matches}
    claimed = ledger.claim(by_key, svc.now(), settings.notify_repeat_hours)
    if not claimed:
        return None  # nothing new: nothing is sent, the last outcome stands
    new = [by_key[k] for k in claimed]
    message = new_matches_message(side, new, page_link(settings.public_url, side))
    outcome: dict[str, Any] = {"side": side, "count": len(new)}
    try:
        deliver(settings.notify_urls, message.title, message.body, settings.notify_timeout_seconds)
    except AlertFailed as exc:
        ledger.release(claimed)
        outcome.update(ok=False, reason=str(exc))
        log.warning("alert on %d new %ss not sent: %s", len(new), side, exc)
    else:
        outcome.update(ok=True)
        log.info("alert sent: %d new %ss", len(new), side)
    outcome["at"] = svc.now().isoformat()
    ledger.record(outcome)
    _announce(svc, outcome)
    return outcome


def _announce(svc: Services, outcome: dict[str, Any]) -> None:
    # Open pages show the alert's outcome; a page that misses this event shows it on reload.
    try:
        svc.events.publish("alert", outcome)
    except Exception as exc:  # noqa: BLE001 - best effort, like every live event
        log.debug("alert event not published: %s", exc)


def send_probe(svc: Services) -> None:
    """Send the test message to the configured URLs, or raise AlertFailed saying why."""
    settings = svc.settings
    message = probe_message(page_link(settings.public_url, "put"))
    deliver(settings.notify_urls, message.title, message.body, settings.notify_timeout_seconds)
