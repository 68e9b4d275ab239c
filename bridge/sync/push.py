"""Keeping a connection's push channel alive: after a successful run, a provider that can push (Google watch
channels, Graph subscriptions) is asked to notify ``<base_url>/hooks/<provider>``, and the channel is renewed
a day before it expires (a new one first, then the old one stopped, so no notice falls between).

Only with a public HTTPS base URL: the providers call nothing else, and without push the schedule alone
keeps the connection in step. A channel that cannot be made costs the run nothing: it is logged by class
and tried again after the next run.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from bridge import adapters
from bridge.adapters.base import AdapterError, Channel, Watchable
from bridge.settings import Settings
from bridge.store import channels
from bridge.store.db import Store
from bridge.store.models import Connection

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(hours=24)


def hook_address(settings: Settings, provider: str) -> str | None:
    """Where ``provider`` posts its notices, or None when the bridge has no public HTTPS address."""
    base = settings.base_url.rstrip("/")
    if not base.lower().startswith("https://"):
        return None
    return f"{base}/hooks/{provider}"


def keep_channel(store: Store, adapter: Watchable, connection_id: int, address: str, now: datetime) -> None:
    """Make or renew the connection's channel when it has none or it expires within a day."""
    with store.read() as session:
        current = channels.of_connection(session, connection_id)
        if current is not None and current.expires_at - now > RENEW_BEFORE:
            return
    token = secrets.token_urlsafe(32)
    try:
        made = adapter.watch(address, token)
    except AdapterError as exc:
        log.warning("push channel of connection %d not made: %s", connection_id, type(exc).__name__)
        return
    with store.write() as session:
        connection = session.get(Connection, connection_id)
        if connection is None:
            replaced = None
        else:
            old = channels.keep(session, connection, channel_id=made.id, resource_id=made.resource_id,
                                token=token, expires_at=made.expires_at)
            replaced = Channel(old.channel_id, old.resource_id, old.expires_at) if old is not None else None
    if replaced is not None:
        try:
            adapter.unwatch(replaced)
        except AdapterError as exc:  # it expires by itself; its notices no longer match a channel
            log.info("old push channel of connection %d not stopped: %s", connection_id, type(exc).__name__)


def stop_channel(account: adapters.Account, channel: Channel) -> bool:
    """Stop a disconnected connection's channel at the provider, so it stops posting notices; whether it
    was stopped. Best effort: a channel left running expires by itself, and the hook ignores its notices
    since no row names it any more."""
    try:
        with adapters.open_adapter(account) as adapter:
            if not isinstance(adapter, Watchable):
                return False
            adapter.unwatch(channel)
    except AdapterError as exc:
        log.info("push channel of a removed connection not stopped: %s", type(exc).__name__)
        return False
    return True
