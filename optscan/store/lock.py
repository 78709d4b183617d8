"""The scan lock: one scan at a time across web workers, the CLI and the timer."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)


class ScanLock:
    """A short-TTL Redis lock renewed by a watchdog for as long as its scan runs."""

    def __init__(self, client: redis.Redis, key: str, *, ttl: int, holder: dict[str, Any]):
        self.client = client
        self.key = key
        self.ttl = ttl
        self.holder = holder
        # thread_local=False: the token must be visible to whichever greenlet or thread
        # releases the lock, not only to the one that took it.
        self._lock = client.lock(key, timeout=ttl, blocking=False, thread_local=False)
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def holder_key(self) -> str:
        """Return the key that describes who holds the lock."""
        return f"{self.key}:holder"

    @property
    def lost(self) -> bool:
        """Return whether the lock expired or was taken from us while held."""
        return self._lost.is_set()

    def acquire(self) -> bool:
        """Take the lock without waiting; start the watchdog when taken."""
        if not self._lock.acquire(blocking=False):
            return False
        self.client.set(self.holder_key, json.dumps(self.holder), ex=self.ttl)
        self._watchdog = threading.Thread(
            target=self._renew, name="scan-lock-watchdog", daemon=True
        )
        self._watchdog.start()
        return True

    def _renew(self) -> None:
        interval = max(self.ttl / 3, 0.2)
        last_renewed = time.monotonic()
        while not self._stop.wait(interval):
            try:
                self._lock.reacquire()
                self.client.expire(self.holder_key, self.ttl)
                last_renewed = time.monotonic()
            except LockError:
                log.error("scan lock %s was lost; stopping the scan", self.key)
                self._lost.set()
                return
            except redis.RedisError as exc:
                # A Redis blip is survivable until the TTL would have run out anyway.
                if time.monotonic() - last_renewed >= self.ttl:
                    log.error("scan lock %s could not be renewed: %s", self.key, exc)
                    self._lost.set()
                    return
                log.warning("scan lock %s renewal failed, retrying: %s", self.key, exc)

    def release(self) -> None:
        """Stop the watchdog and release the lock if we still own it."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        try:
            if self._lock.owned():
                self.client.delete(self.holder_key)
                self._lock.release()
        except (LockError, redis.RedisError) as exc:
            # The key expires by itself within one TTL; nothing else to undo.
            log.warning("scan lock %s not released cleanly: %s", self.key, exc)

    def __enter__(self) -> ScanLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(client: redis.Redis, key: str) -> dict[str, Any] | None:
    """Return who holds the scan lock, or None when it is free."""
    if not client.exists(key):
        return None
    raw = client.get(f"{key}:holder")
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}
