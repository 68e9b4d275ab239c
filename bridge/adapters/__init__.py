"""Provider adapters; the registry below is the only place that names providers.

:func:`open_adapter` builds the adapter of one connection from what the store keeps (server
URL, chosen remote calendar) and its decrypted credentials, with an HTTP client of its own
that is closed when the block ends.
"""

from __future__ import annotations

import functools
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import certifi
import httpx

from bridge.adapters import google, microsoft
from bridge.adapters.base import Adapter, Authorization, OAuthApp, Permanent
from bridge.adapters.caldav import ICLOUD_URL, QUIRKS, CalDavAdapter, ICloudAdapter
from bridge.adapters.google import API_URL as GOOGLE_API_URL
from bridge.adapters.google import GoogleAdapter
from bridge.adapters.ics import IcsFeedAdapter
from bridge.adapters.microsoft import GRAPH_URL, MicrosoftAdapter

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


CredentialSaver = Callable[[Mapping[str, str]], None]


@dataclass(frozen=True)
class Account:
    """Where one connection's external calendar lives, and how to sign in (decrypted, never logged).

    ``save_credentials`` keeps credentials the adapter renewed (an OAuth access token with its expiry, a
    rotated refresh token) encrypted in the connection at once: a provider that rotates refresh tokens
    refuses the old one, so a renewal that is not saved before the run ends could lock the connection out.
    ``ca_file``: a PEM bundle trusted beside the public authorities (a corporate TLS proxy; the tests' CA).
    """

    provider: str
    server_url: str
    remote_calendar: str
    credentials: Mapping[str, str] = field(repr=False, default_factory=dict)
    save_credentials: CredentialSaver | None = field(default=None, repr=False, compare=False)
    ca_file: str | None = None


def _basic(account: Account) -> httpx.Auth | None:
    username, password = account.credentials.get("username"), account.credentials.get("password")
    if not username:
        return None
    return httpx.BasicAuth(username, password or "")


def _caldav(account: Account, client: httpx.Client) -> Adapter:
    if not account.server_url:
        raise Permanent("the connection has no server URL")
    return CalDavAdapter(client, account.server_url, calendar_url=account.remote_calendar or None,
                         auth=_basic(account))


def _icloud(account: Account, client: httpx.Client) -> Adapter:
    return ICloudAdapter(client, account.server_url or ICLOUD_URL, calendar_url=account.remote_calendar or None,
                         auth=_basic(account))


def _ics(account: Account, client: httpx.Client) -> Adapter:
    url = account.remote_calendar or account.server_url
    if not url:
        raise Permanent("the connection has no feed URL")
    return IcsFeedAdapter(client, url, auth=_basic(account))


def _google(account: Account, client: httpx.Client) -> Adapter:
    return GoogleAdapter(client, account.remote_calendar, account.credentials,
                         api_url=account.server_url or GOOGLE_API_URL, save_credentials=account.save_credentials,
                         ca_bundle=ca_bundle(account.ca_file))


def _microsoft(account: Account, client: httpx.Client) -> Adapter:
    return MicrosoftAdapter(client, account.credentials, account.remote_calendar,
                            graph_url=account.server_url or GRAPH_URL, save_credentials=account.save_credentials,
                            verify=ca_bundle(account.ca_file))


def _exchange(account: Account, client: httpx.Client) -> Adapter:
    """exchangelib brings its own transport (requests): the httpx client goes unused, and the CA bundle is
    trusted process-wide (bridge.adapters.exchange.trust). Imported here: exchangelib takes ~0.4 s to import,
    which every other command would pay."""
    from bridge.adapters.exchange import ExchangeAdapter

    return ExchangeAdapter(account.credentials, account.remote_calendar, server_url=account.server_url,
                           save_credentials=account.save_credentials, ca_bundle=ca_bundle(account.ca_file))


BUILDERS: dict[str, Callable[[Account, httpx.Client], Adapter]] = {
    "caldav": _caldav,
    "icloud": _icloud,
    "ics": _ics,
    "google": _google,
    "microsoft": _microsoft,
    "exchange": _exchange,
}
"""The providers this build can sync."""


def _google_authorization(app: OAuthApp, redirect_uri: str, resume: Mapping[str, Any] | None = None) -> Authorization:
    return google.authorize(app, redirect_uri, ca_bundle=ca_bundle(app.ca_file), resume=resume)


def _microsoft_authorization(app: OAuthApp, redirect_uri: str,
                             resume: Mapping[str, Any] | None = None) -> Authorization:
    return microsoft.authorize(app, redirect_uri, verify=ca_bundle(app.ca_file), resume=resume)


AUTHORIZERS: dict[str, Callable[..., Authorization]] = {
    "google": _google_authorization,
    "microsoft": _microsoft_authorization,
}
"""The providers whose accounts are connected by signing in (OAuth 2.0 code flow with PKCE): each is called
as ``(app, redirect_uri)`` to start a grant, or ``(app, redirect_uri, saved)`` to resume one."""

SYNC_TIMEZONES: dict[str, str | None] = {name: quirks.sync_timezone for name, quirks in QUIRKS.items()}
"""The sync time zone a new connection of each provider starts with (iCloud: UTC)."""

READ_ONLY = frozenset({"ics"})


@functools.cache
def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """One verifying TLS context per process and extra CA: loading the CA bundle costs ~20 ms, more than a
    quiet run's whole local work, so clients share it (it holds no per-connection state)."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


@functools.cache
def ca_bundle(ca_file: str | None = None) -> str:
    """A PEM file of the public authorities plus ``ca_file``, for libraries that take a path (requests, under
    google-auth and msal), written once per process to a temporary file."""
    if not ca_file:
        return certifi.where()
    with open(certifi.where(), encoding="ascii") as public, open(ca_file, encoding="ascii") as extra:
        combined = public.read() + "\n" + extra.read()
    with tempfile.NamedTemporaryFile("w", suffix=".pem", prefix="calbridge-ca-", delete=False,
                                     encoding="ascii") as handle:
        handle.write(combined)
    return handle.name


@contextmanager
def open_adapter(account: Account) -> Iterator[Adapter]:
    """The adapter of ``account`` with its own HTTP client (no cookies or connections shared between
    accounts), closed afterwards."""
    builder = BUILDERS.get(account.provider)
    if builder is None:
        raise Permanent(f"provider {account.provider!r} is not supported by this version")
    with httpx.Client(timeout=TIMEOUT, headers={"User-Agent": "calbridge"},
                      verify=tls_context(account.ca_file)) as client:
        adapter = builder(account, client)
        try:
            yield adapter
        finally:
            adapter.close()
