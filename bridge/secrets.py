"""Secrets at rest: connection credentials (and later customer addresses) are stored
encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under keys from the settings.

``secret_keys`` lists keys, newest first: the first encrypts, all of them decrypt, so a key
is rotated by putting a new one in front, running ``calbridge secrets rotate`` (which
re-encrypts every stored secret with it) and then dropping the old one. With no keys
configured, the embedded default keeps one in ``<data_dir>/secret.key`` (mode 600),
created on first use; scale-out installations must give the same keys to every process.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge.settings import Settings


class SecretError(ValueError):
    """A stored secret cannot be decrypted with the configured keys."""


class Secrets:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except ValueError as exc:
            raise ValueError("a secret key is not a valid Fernet key (32 url-safe base64 bytes)") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> Secrets:
        keys = [key for key in settings.secret_keys.split(",") if key.strip()]
        return cls(keys or [_key_file(settings.data_dir)])

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError("a stored secret does not decrypt with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """The same secret, encrypted with the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError("a stored secret does not decrypt with the configured keys") from exc


def new_key() -> str:
    return Fernet.generate_key().decode()


def _key_file(data_dir: Path) -> str:
    """The embedded default's key, made on first use. Processes starting together (a server and workers) must
    all end up with the same key: each writes a candidate to a file of its own and links it into place, which
    only the first succeeds at; the file appears whole, so no one reads it half-written."""
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor, candidate = tempfile.mkstemp(dir=data_dir, prefix=".secret.key.")  # mode 600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(new_key() + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: its key is the one
                os.link(candidate, path)
        finally:
            os.unlink(candidate)
    return path.read_text().strip()
