"""The admin password: only a salted hash is kept, in config or in the instance folder."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from functools import cache
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 10


@cache
def _unusable_hash() -> str:
    """Return a hash no password matches (made on first use: scrypt takes ~0.1 s)."""
    return generate_password_hash("optscan: never matches a real password")


log = logging.getLogger(__name__)


class WeakPassword(ValueError):
    """The password is too short to protect a server."""


def check_strength(password: str) -> None:
    """Raise WeakPassword when the password is too short to protect a server."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_LENGTH} characters")


class PasswordStore:
    """Read and write the password hash; a configured hash wins over the stored one."""

    def __init__(self, path: Path, configured_hash: str | None = None):
        self.path = Path(path)
        self.configured_hash = configured_hash or None

    def current_hash(self) -> str | None:
        """Return the hash in force, or None when no password is set."""
        if self.configured_hash:
            return self.configured_hash
        try:
            stored = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return stored or None

    def is_set(self) -> bool:
        """Return whether a password protects the app."""
        return self.current_hash() is not None

    def check(self, password: str) -> bool:
        """Return whether the password matches, in constant time even when none is set."""
        stored = self.current_hash()
        # Hash against a dummy when unset so timing does not tell whether a password exists.
        try:
            matched = check_password_hash(stored or _unusable_hash(), password)
        except ValueError as exc:
            # A damaged hash file must refuse logins, not answer 500.
            log.error("the stored password hash is unusable (%s); run `flask set-password`", exc)
            return False
        return stored is not None and matched

    def fingerprint(self, secret: str | bytes) -> str | None:
        """Return a keyed digest of the hash in force, for sessions to prove which one they saw.

        Keyed with the app's secret: the session cookie is signed, not encrypted, so it must
        not carry anything derived from the hash alone.
        """
        stored = self.current_hash()
        if stored is None:
            return None
        key = secret.encode() if isinstance(secret, str) else secret
        return hmac.new(key, stored.encode(), hashlib.sha256).hexdigest()[:32]

    def set(self, password: str) -> None:
        """Store the hash of a new password (owner-only file, replaced atomically)."""
        check_strength(password)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_password_hash(password) + "\n")
        os.replace(temporary, self.path)

    def clear(self) -> bool:
        """Remove the stored password; return whether one was stored."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
