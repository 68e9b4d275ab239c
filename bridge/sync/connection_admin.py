"""Managing connections: what ``calbridge connection …``, ``sync`` and ``log`` and /api/v1/connections share.

Adding a connection tests the account first (the adapter lists the account's calendars), so a
wrong password or URL is reported at once, in plain words (:class:`ConnectionProblem`), before
anything is stored. The network part (:func:`check_new`) runs outside any transaction; the store
part (:func:`create`) in the caller's. A manual run takes the connection's lease like a worker
does (:func:`sync_now`), so it never overlaps a scheduled run or another manual one.

Callers own the transactions and decide who may touch which connection (the CLI any, the API only
its tenant's); nothing here commits.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from secrets import token_hex
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge import adapters
from bridge.adapters.base import AdapterError, AuthExpired, Channel, RemoteCalendar
from bridge.secrets import Secrets
from bridge.store import calendars, channels, connections, items, mappings, writers
from bridge.store.db import Store
from bridge.store.models import Calendar, Connection, SyncRun, User
from bridge.sync import backoff, mirror, push, runlog, scheduler
from bridge.sync.engine import Engine, Progress, credential_saver
from bridge.sync.outcome import RunOutcome

log = logging.getLogger(__name__)
MANUAL_LEASE_SECONDS = 120  # a manual action's lease, renewed while it lasts: a dead process frees it this soon
PROVIDERS = tuple(sorted(adapters.BUILDERS))  # the providers this build can sync
Account = adapters.Account


class ConnectionProblem(ValueError):
    """The account cannot be used as given; the message says why in plain words."""


class AlreadyConnected(ConnectionProblem):
    """The calendar is already connected to this remote calendar (a second connection would mirror it twice)."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(f"the calendar is already connected to this remote calendar (connection {connection_id})")
        self.connection_id = connection_id


class PrivateAddress(ConnectionProblem):
    """The account's server is in a loopback, private or link-local network, which tenants may not reach."""

    def __init__(self) -> None:
        super().__init__("the address is in a loopback, private or link-local network; the operator may allow "
                         "such addresses with the setting provider_private_networks")


class RemoteCalendarNeeded(ConnectionProblem):
    """The account has several calendars (or none) and none was chosen."""

    def __init__(self, found: Sequence[RemoteCalendar], hint: str) -> None:
        names = "\n".join(f"  {c.id}\t{c.name}" for c in found) or "  (none)"
        super().__init__(f"choose the remote calendar with {hint}; the account has:\n{names}")
        self.found = list(found)


class SyncInProgress(ValueError):
    """A run of the connection holds its lease (a scheduled or another manual one)."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(f"connection {connection_id} is being synced right now; try again in a moment")
        self.connection_id = connection_id


@dataclass(frozen=True)
class Checked:
    """What the account test found: the remote calendar to sync and its display name."""

    remote_calendar: str
    remote_name: str


# -- the account ----------------------------------------------------------------------------------

def describe(error: AdapterError) -> str:
    """An adapter failure in plain words, for the person who typed the account in."""
    if isinstance(error, AuthExpired):
        return f"the server refused the credentials ({error}); check the user name and the (app-specific) password"
    return f"the server could not be used: {error}"


def refuse_private_address(url: str) -> None:
    """:class:`PrivateAddress` when ``url``'s host is or resolves to an address that is not globally reachable
    (loopback, private, link-local such as a cloud's metadata service, shared, reserved). Checked when a tenant
    adds an account; a name that does not resolve is left to the account test, which says so."""
    host = urlsplit(url).hostname if url else None
    if not host:
        return
    try:  # a literal (with an IPv6 zone, which no resolver takes) or else the name's addresses
        found = {str(ipaddress.ip_address(host.split("%", 1)[0]))}
    except ValueError:
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
        except (socket.gaierror, UnicodeError):
            return
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            raise PrivateAddress


def check_account(account: adapters.Account, *, private_networks: bool = True) -> list[RemoteCalendar]:
    """The account's calendars; :class:`ConnectionProblem` when the provider cannot be reached or used.
    ``private_networks`` False (a tenant's request, not the operator's command): :class:`PrivateAddress` for a
    server in a loopback, private or link-local network, before any request is made."""
    if not private_networks:
        refuse_private_address(account.server_url or account.remote_calendar)
    try:
        with adapters.open_adapter(account) as adapter:
            return adapter.list_calendars()
    except AdapterError as exc:
        raise ConnectionProblem(describe(exc)) from exc


def check_new(account: adapters.Account, *, hint: str, private_networks: bool = True) -> Checked:
    """Test a new connection's account and settle its remote calendar: the one given, else the
    account's only one (:class:`RemoteCalendarNeeded` names them when there are several or none;
    ``hint`` says how to choose: an option or a field name)."""
    found = check_account(account, private_networks=private_networks)
    remote = account.remote_calendar
    if not remote:
        if len(found) != 1:
            raise RemoteCalendarNeeded(found, hint)
        remote = found[0].id
    chosen = next((c for c in found if c.id == remote), None)
    return Checked(remote, chosen.name if chosen is not None else "")


def new_account(provider: str, url: str, remote_calendar: str, username: str, password: str, *,
                ca_file: str | None = None) -> adapters.Account:
    """The account of a connection to be added; credentials only with a user name (a feed may need none)."""
    credentials = {"username": username, "password": password} if username else {}
    return adapters.Account(provider, url, remote_calendar, credentials, ca_file=ca_file)


EXCHANGE_AUTH = ("ntlm", "basic", "oauth")


def exchange_account(url: str, remote_calendar: str, username: str, password: str, *, email: str, auth: str,
                     version: str = "", ca_file: str | None = None, login_url: str = "") -> adapters.Account:
    """An Exchange (EWS) connection's account: an explicit EWS URL, or none and the mailbox's e-mail address
    for autodiscover; with OAuth, ``username`` and ``password`` are the app's client id and secret. What the
    connection test discovers (the EWS URL, the server version) lands in the credentials, so the connection
    keeps it and its runs ask neither again. ``login_url`` (the ``microsoft_login_url`` setting): another
    Microsoft identity platform for OAuth than Entra's public one (a national cloud)."""
    if auth not in EXCHANGE_AUTH:
        raise ConnectionProblem(f"the authentication must be one of {', '.join(EXCHANGE_AUTH)}")
    mailbox = email or (username if "@" in username else "")
    if not mailbox:
        raise ConnectionProblem("give the mailbox's e-mail address (--email): EWS opens a mailbox by it")
    if auth == "oauth":  # an app registration's client credentials; the tenant named by the mailbox's domain
        credentials = {"auth": auth, "client_id": username, "client_secret": password, "email": mailbox,
                       "tenant_id": mailbox.rpartition("@")[2]}
        if login_url:
            credentials["authority"] = f"{login_url.rstrip('/')}/{credentials['tenant_id']}"
    else:
        credentials = {"auth": auth, "username": username, "password": password, "email": mailbox}
    if version:
        credentials["version"] = version
    return adapters.Account("exchange", url, remote_calendar, credentials, save_credentials=credentials.update,
                            ca_file=ca_file)


def is_read_only(provider: str) -> bool:
    return provider in adapters.READ_ONLY


def account_of(connection: Connection, secrets: Secrets, *, store: Store | None = None,
               ca_file: str | None = None) -> adapters.Account:
    """A stored connection's account; with ``store``, tokens the adapter renews are saved (rotation)."""
    credentials = json.loads(secrets.decrypt(connection.credentials)) if connection.credentials else {}
    saver = credential_saver(store, secrets, connection.id) if store is not None else None
    return adapters.Account(connection.provider, connection.server_url, connection.remote_calendar, credentials,
                            save_credentials=saver, ca_file=ca_file)


# -- changes --------------------------------------------------------------------------------------

def initial_options(provider: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validated options of a new connection, with the provider's sync time zone unless one is given."""
    chosen = mirror.validate_options(options)
    zone = adapters.SYNC_TIMEZONES.get(provider)
    if zone is not None and "sync_timezone" not in chosen:
        chosen["sync_timezone"] = zone
    return chosen


READ_ONLY_DIRECTION = "an ICS feed is read-only: its direction is inbound"


def direction_for(provider: str, direction: str | None) -> str:
    """The direction a new connection of ``provider`` gets: read-only providers only receive."""
    if direction is not None and direction not in connections.DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(connections.DIRECTIONS)}")
    return "inbound" if provider in adapters.READ_ONLY else direction or "both"


def create(session: Session, calendar: Calendar, provider: str, checked: Checked, *, server_url: str,
           credentials: Mapping[str, str], direction: str | None, options: Mapping[str, Any],
           secrets: Secrets) -> Connection:
    """Store a connection whose account :func:`check_new` accepted; the credentials are encrypted.
    A read-only provider's connection is inbound whatever ``direction`` says (:func:`direction_for`);
    :class:`AlreadyConnected` when the calendar already has a connection to the same remote calendar."""
    twin = session.scalar(select(Connection.id).where(
        Connection.calendar_id == calendar.id, Connection.provider == provider, Connection.server_url == server_url,
        Connection.remote_calendar == checked.remote_calendar))
    if twin is not None:
        raise AlreadyConnected(twin)
    connection = connections.create_connection(session, calendar, provider, dict(options))
    connections.set_account(session, connection, server_url=server_url, remote_calendar=checked.remote_calendar,
                            remote_name=checked.remote_name,
                            credentials=secrets.encrypt(json.dumps(dict(credentials))) if credentials else "")
    connections.set_direction(session, connection, direction_for(provider, direction))
    return connection


def set_direction(session: Session, connection: Connection, direction: str) -> None:
    if connection.provider in adapters.READ_ONLY and direction != "inbound":
        raise ValueError(READ_ONLY_DIRECTION)
    connections.set_direction(session, connection, direction)


def set_enabled(connection: Connection, enabled: bool) -> None:
    """Pause or resume; resuming also clears a needs-attention mark (the owner acted) and makes it due."""
    connection.enabled = enabled
    if enabled:
        backoff.clear_attention(connection)


def change_options(session: Session, connection: Connection, options: Mapping[str, Any], now: datetime, *,
                   token_max_age_days: int) -> mirror.OptionChange:
    """Set some options (:func:`bridge.sync.mirror.change_options`); ValueError before any change."""
    calendar, owner = calendar_of(session, connection)
    return mirror.change_options(session, connection, calendar, owner, options, now,
                                 token_max_age_days=token_max_age_days)


def disconnect(session: Session, connection: Connection, *, remove_mirrored: bool) -> int:
    """Remove the connection; its mirrored items are removed or become ordinary (client) items that
    the owner may change. Returns how many mirrored items there were."""
    calendar, owner = calendar_of(session, connection)
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])
    mirrored = items.of_origin(session, calendar.id, mirror.origin_of(connection))
    for item in mirrored:
        if remove_mirrored:
            items.delete(session, calendar, item.href, writers.connection(connection.id))
        else:
            item.origin = "client"  # no longer anyone's copy: the owner may change or delete them
    mappings.forget_all(session, connection.id)
    session.delete(connection)
    session.flush()
    return len(mirrored)


@dataclass(frozen=True)
class Departing:
    """A removed connection's push channel, to stop at the provider once the removal has committed."""

    account: adapters.Account
    channel: Channel

    def stop(self) -> bool:
        return push.stop_channel(self.account, self.channel)


def departing(session: Session, connection: Connection, secrets: Secrets, *,
              ca_file: str | None = None) -> Departing | None:
    """Read before :func:`disconnect`: what is needed to stop the connection's push channel (None: it has none)."""
    channel = channels.of_connection(session, connection.id)
    if channel is None:
        return None
    return Departing(account_of(connection, secrets, ca_file=ca_file),
                     Channel(channel.channel_id, channel.resource_id, channel.expires_at))


@dataclass(frozen=True)
class Removed:
    """What :func:`remove_connection` did: the connection's calendar, how many mirrored items it had, and its push
    channel for the caller to stop (None: it had none)."""

    calendar_id: int
    mirrored: int
    departing: Departing | None


def remove_connection(store: Store, connection_id: int, runner: str, find: Callable[[Session], Connection], *,
                      secrets: Secrets, ca_file: str | None, remove_mirrored: bool) -> Removed:
    """:func:`disconnect` under the connection's lease, so that no run writes items for a connection that is going
    away; :class:`SyncInProgress` while a run holds it. ``find`` looks the connection up in the caller's scope (the
    CLI any, the API and the admin page their tenant's, raising their not-found), before the lease and in it. The
    push channel is stopped by the caller once this has committed (best effort: one left running expires)."""
    with store.read() as session:
        find(session)
    with leased(store, connection_id, runner, datetime.now(UTC)), store.write() as session:
        connection = find(session)
        calendar_id = connection.calendar_id
        channel = departing(session, connection, secrets, ca_file=ca_file)
        mirrored = disconnect(session, connection, remove_mirrored=remove_mirrored)
    return Removed(calendar_id, mirrored, channel)


def sync_now(store: Store, engine: Engine, connection_id: int, runner: str, now: datetime, *, reset: bool = False,
             confirm_deletions: bool = False, progress: Progress | None = None) -> RunOutcome:
    """One manual run under the connection's lease (``runner`` names the holder); :class:`SyncInProgress`
    while another run holds it, and the engine's ``ConnectionDisabled`` for a disabled connection.
    ``reset`` forgets the sync state first: a full resync, without duplicates and without mails."""
    with leased(store, connection_id, runner, now):
        return engine.run(connection_id, trigger="reset" if reset else "manual", confirm_deletions=confirm_deletions,
                          progress=progress)


def start_sync(store: Store, engine: Engine, connection_id: int, runner: str, now: datetime, *, reset: bool = False,
               confirm_deletions: bool = False) -> threading.Thread:
    """A manual run on a thread of its own, for a page that answers at once and then follows the run in the
    sync log (its progress lands on the run's row: :func:`bridge.sync.runlog.progress_recorder`). The lease is
    claimed before this returns, so :class:`SyncInProgress` is the caller's to report; the thread releases it."""
    if not scheduler.claim_one(store, connection_id, runner, now, MANUAL_LEASE_SECONDS):
        raise SyncInProgress(connection_id)

    def run() -> None:
        try:
            with _kept(store, connection_id, runner):
                engine.run(connection_id, trigger="reset" if reset else "manual", confirm_deletions=confirm_deletions,
                           progress=runlog.progress_recorder(store, connection_id))
        except Exception as exc:  # disabled or removed meanwhile; a failed run is in its row already
            log.warning("manual sync of connection %s ended with %s", connection_id, type(exc).__name__)

    thread = threading.Thread(target=run, name=f"sync-{connection_id}", daemon=True)
    thread.start()
    return thread


def runner_name(kind: str) -> str:
    """A lease holder's name for a manual action: who (``api``, ``admin``, ``cli``), which process, which call."""
    return f"{kind}:{os.getpid()}:{token_hex(4)}"


@contextmanager
def leased(store: Store, connection_id: int, runner: str, now: datetime) -> Iterator[None]:
    """Hold the connection's lease for a manual action (a run, a disconnect), so no scheduled run
    writes beside it; :class:`SyncInProgress` while another holder has it."""
    if not scheduler.claim_one(store, connection_id, runner, now, MANUAL_LEASE_SECONDS):
        raise SyncInProgress(connection_id)
    with _kept(store, connection_id, runner):
        yield


@contextmanager
def _kept(store: Store, connection_id: int, runner: str) -> Iterator[None]:
    """Renew a claimed lease every third of its length while the block runs, then release it, so a long manual
    run keeps the scheduler off and a process that dies mid-run holds the connection for two minutes at most."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(MANUAL_LEASE_SECONDS / 3):
            try:
                if not scheduler.renew(store, connection_id, runner, datetime.now(UTC), MANUAL_LEASE_SECONDS):
                    log.warning("the lease of connection %s was lost during a manual action", connection_id)
                    return
            except Exception as exc:  # a slow database: the next beat tries again
                log.warning("renewing the lease of connection %s failed with %s", connection_id, type(exc).__name__)

    beat = threading.Thread(target=renew, name=f"lease-{connection_id}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        done.set()
        beat.join()
        scheduler.release(store, connection_id, runner)  # a no-op once the row is gone


# -- reading --------------------------------------------------------------------------------------

def calendar_of(session: Session, connection: Connection) -> tuple[Calendar, User]:
    calendar = session.get(Calendar, connection.calendar_id)
    assert calendar is not None  # the foreign key cascades
    owner = session.get(User, calendar.owner_id)
    assert owner is not None
    return calendar, owner


def listing(session: Session, tenant_id: int | None = None) -> list[tuple[Connection, Calendar, User]]:
    """Connections (of one tenant, if given) with their calendar and its owner, oldest first."""
    query = (select(Connection, Calendar, User).join(Calendar, Connection.calendar_id == Calendar.id)
             .join(User, Calendar.owner_id == User.id).order_by(Connection.id))
    if tenant_id is not None:
        query = query.where(Connection.tenant_id == tenant_id)
    return [(connection, calendar, owner) for connection, calendar, owner in session.execute(query)]


def last_runs(session: Session, connection_ids: Sequence[int]) -> dict[int, SyncRun]:
    """The newest run of each of these connections (those never run are missing), in one query."""
    if not connection_ids:
        return {}
    newest = (select(func.max(SyncRun.id)).where(SyncRun.connection_id.in_(list(connection_ids)))
              .group_by(SyncRun.connection_id))
    return {run.connection_id: run for run in session.scalars(select(SyncRun).where(SyncRun.id.in_(newest)))}


def runs(session: Session, connection_id: int, *, limit: int, before: int | None = None) -> list[SyncRun]:
    """The sync log of a connection, newest first; ``before`` (a run id) pages back."""
    query = select(SyncRun).where(SyncRun.connection_id == connection_id)
    if before is not None:
        query = query.where(SyncRun.id < before)
    return list(session.scalars(query.order_by(SyncRun.id.desc()).limit(max(1, limit))))
