"""What every provider adapter offers the sync engine, and the errors it may raise.

An adapter speaks one provider's protocol and converts to and from icalendar; it knows no
other provider, no database and no rules. The engine (bridge/sync) decides what to do with
what an adapter fetched and calls it to write; provider names appear only in the registry
(bridge/adapters/__init__.py).

Errors are translated at one boundary per adapter (its ``_map_errors``) into this tree,
so the engine decides retry, back-off, attention or resync without knowing the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import icalendar

# -- errors -------------------------------------------------------------------------------

class AdapterError(Exception):
    """Base of every failure an adapter reports; ``str()`` never holds event content."""


class AuthExpired(AdapterError):
    """Credentials were refused or revoked: the connection needs its owner's attention."""


class RateLimited(AdapterError):
    """The provider asked to slow down; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenInvalid(AdapterError):
    """The saved sync state is unknown or expired (HTTP 410, DAV:valid-sync-token): fetch in full."""


class PreconditionFailed(AdapterError):
    """The remote event changed since its etag was read: fetch it again before writing."""


class RemoteNotFound(AdapterError):
    """The remote calendar or event does not exist (any more)."""


class Transient(AdapterError):
    """A failure that may pass (timeouts, 5xx, connection resets): retry with back-off."""


class Permanent(AdapterError):
    """A failure retrying will not fix (a refused request, a calendar that cannot be written)."""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable.
    One parser for every adapter: providers send both forms."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# -- values -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteCalendar:
    """A calendar of the account, for the user to pick one."""

    id: str  # the provider's identifier (CalDAV: the collection's URL)
    name: str
    timezone: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class RemoteEvent:
    """One event on the remote side: its id, its version, and its content as one object
    resource (the VEVENTs of one UID with their VTIMEZONEs).

    ``key`` is the idempotency key the event was created with (``Adapter.create``), where the
    provider keeps one (CalDAV: the resource name; Google: the client-chosen id); None where it
    keeps none. The engine recognises its own pushes by it after a crash.
    """

    remote_id: str
    etag: str
    calendar: icalendar.Calendar = field(compare=False, repr=False)
    key: str | None = None


@dataclass(frozen=True)
class Delta:
    """What changed on the remote side since ``state``.

    A full fetch (``complete``) lists every event in the window: the engine treats mapped
    events missing from it as deleted. An incremental one lists changes and deletions only.
    ``state`` is what to pass to the next fetch; the engine saves it after applying the delta.
    """

    changed: list[RemoteEvent]
    deleted: list[str]
    state: str | None
    complete: bool


@dataclass(frozen=True)
class Window:
    """The part of the timeline a connection syncs (DESIGN.md: sync window)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Channel:
    """A push subscription the provider holds for one connection (Google watch channel, Graph subscription):
    until ``expires_at`` it calls the bridge's hook when the calendar changes."""

    id: str  # Google: the channel id we chose; Graph: the subscription id it assigned
    resource_id: str  # Google: the resourceId to stop it with; Graph: the subscribed resource
    expires_at: datetime


@dataclass(frozen=True)
class OAuthApp:
    """The installation's OAuth client at one provider, and where that provider's endpoints are (the
    public ones by default; a sovereign cloud or the tests' stand-ins otherwise). Built from settings by
    the caller: adapters read no settings."""

    client_id: str
    client_secret: str = field(default="", repr=False)
    tenant: str = "common"  # Microsoft only: common, organizations, consumers or a tenant id
    auth_url: str = ""  # empty: the provider's public endpoint
    token_url: str = ""
    api_url: str = ""
    ca_file: str | None = None  # as Account.ca_file: trusted beside the public authorities


# -- the protocol -------------------------------------------------------------------------

class Adapter(Protocol):
    """The operations of one connected external calendar."""

    provider: ClassVar[str]
    read_only: ClassVar[bool]

    @property
    def requests_made(self) -> int:
        """Upstream requests since the adapter was built (the sync log records them)."""
        ...

    def list_calendars(self) -> list[RemoteCalendar]:
        """The account's calendars."""
        ...

    def fetch(self, state: str | None, window: Window) -> Delta:
        """Changes since ``state``; everything in ``window`` when ``state`` is None.
        Raises TokenInvalid when the provider no longer knows ``state``."""
        ...

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        """Create the event; ``key`` is stable for the item, so a retry after a crash finds
        the first attempt's result instead of creating a duplicate."""
        ...

    def update(self, remote_id: str, etag: str, event: icalendar.Calendar) -> RemoteEvent:
        """Replace the event if it still has ``etag``; PreconditionFailed otherwise."""
        ...

    def delete(self, remote_id: str, etag: str | None) -> None:
        """Delete the event (if it still has ``etag``, when given); gone already is fine."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class Watchable(Protocol):
    """An adapter whose provider can push change notices to an HTTPS address (Google, Graph)."""

    def watch(self, address: str, token: str) -> Channel:
        """Ask the provider to notify ``address`` of changes, sending ``token`` back with each notice
        (Google: X-Goog-Channel-Token; Graph: clientState). Renewing is a new watch, then unwatch."""
        ...

    def unwatch(self, channel: Channel) -> None:
        """Stop the channel; one the provider no longer knows is fine."""
        ...


class Authorization(Protocol):
    """One pending OAuth 2.0 authorization-code grant (with PKCE): send the user to ``url``; the provider
    then redirects to the redirect URI given at the start, and ``complete`` turns that redirect into the
    credentials a connection keeps (encrypted): refresh token, access token and expiry, client id."""

    url: str

    def complete(self, redirect_url: str) -> dict[str, str]:
        """Check the state, redeem the code; AuthExpired when the user refused or the code is bad."""
        ...

    def saved(self) -> dict[str, Any]:
        """JSON that resumes this grant in another request or process (the admin page's redirect lands on
        any web process): secret, to be kept encrypted."""
        ...
