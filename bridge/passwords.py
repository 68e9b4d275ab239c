"""argon2id password hashes, and a short-lived cache of verified credentials.

A CalDAV client sends Basic credentials with every request; a full argon2id
verification costs tens of milliseconds, so a verified (login, password) pair
is remembered for a few seconds, keyed by an HMAC under a per-process key and
tied to the stored hash (a changed password invalidates it at once).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Verified against when a login does not exist, so that both paths cost the same.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class CredentialCache:
    """Remembers verified credentials for ``ttl`` seconds; never stores a password."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: dict[str, tuple[bytes, str, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, login: str, password: str) -> bytes:
        return hmac.new(self._key, f"{login}\0{password}".encode(), hashlib.sha256).digest()

    def check(self, login: str, password: str, password_hash: str | None) -> bool:
        """True if the credentials match ``password_hash`` (None: no such login)."""
        if password_hash is None:
            verify_password(_DUMMY_HASH, password)
            return False
        digest = self._digest(login, password)
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(login)
        if cached and cached[1] == password_hash and cached[2] > now and hmac.compare_digest(cached[0], digest):
            return True
        if not verify_password(password_hash, password):
            return False
        if self._ttl > 0:
            with self._lock:
                if len(self._entries) >= self._max_entries:
                    self._entries = {k: v for k, v in self._entries.items() if v[2] > now}
                    if len(self._entries) >= self._max_entries:
                        self._entries.clear()
                self._entries[login] = (digest, password_hash, now + self._ttl)
        return True
