from __future__ import annotations

import pytest

from bridge import passwords
from bridge.passwords import CredentialCache, hash_password, verify_password


def test_hashes_are_argon2id_and_verify() -> None:
    hashed = hash_password("a good password")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "a good password")
    assert not verify_password(hashed, "a bad password")
    assert not verify_password("not a hash", "a good password")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords that went through a full argon2id verification."""
    seen: list[str] = []
    real = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password", lambda h, p: seen.append(p) or real(h, p))
    return seen


def test_cache_spares_the_hash_until_the_stored_hash_changes(calls: list[str]) -> None:
    hashed = hash_password("a good password")
    cache = CredentialCache(ttl=60)
    assert cache.check("eva", "a good password", hashed)
    assert cache.check("eva", "a good password", hashed)
    assert len(calls) == 1, "the second request did not pay a full hash"
    assert not cache.check("eva", "a bad password", hashed)
    new_hash = hash_password("a new password")
    assert not cache.check("eva", "a good password", new_hash), "a changed password ends the cached login"
    assert not cache.check("ghost", "a good password", None)


def test_zero_ttl_disables_the_cache(calls: list[str]) -> None:
    hashed = hash_password("a good password")
    cache = CredentialCache(ttl=0)
    assert cache.check("eva", "a good password", hashed) and cache.check("eva", "a good password", hashed)
    assert len(calls) == 2
