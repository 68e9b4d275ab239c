"""Push channels: which provider subscription belongs to which connection, and the notices they bring."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store.models import Connection, PushChannel


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def of_connection(session: Session, connection_id: int) -> PushChannel | None:
    return session.scalar(select(PushChannel).where(PushChannel.connection_id == connection_id))


def of_channel(session: Session, provider: str, channel_id: str) -> PushChannel | None:
    return session.scalar(select(PushChannel).where(PushChannel.channel_id == channel_id,
                                                    PushChannel.provider == provider))


def token_matches(channel: PushChannel, token: str) -> bool:
    return hmac.compare_digest(channel.token_hash, token_hash(token))


def keep(session: Session, connection: Connection, *, channel_id: str, resource_id: str, token: str,
         expires_at: datetime) -> PushChannel | None:
    """Record the connection's new channel; returns the one it replaces (to be stopped), removed here."""
    old = of_connection(session, connection.id)
    if old is not None:
        session.delete(old)
        session.flush()
    session.add(PushChannel(tenant_id=connection.tenant_id, connection_id=connection.id,
                            provider=connection.provider, channel_id=channel_id, resource_id=resource_id,
                            token_hash=token_hash(token), expires_at=expires_at))
    session.flush()
    return old


def notice(session: Session, provider: str, channel_id: str, token: str, now: datetime) -> int | None:
    """A provider says a channel's calendar changed: the connection's next run is due now and is logged as a
    push. The connection's id, or None when the channel is unknown or the token does not match (nothing
    changes then: a forged notice costs the sender nothing but costs us nothing either)."""
    channel = of_channel(session, provider, channel_id)
    if channel is None or not token_matches(channel, token):
        return None
    connection = session.get(Connection, channel.connection_id)
    if connection is None or not connection.enabled:
        return None
    connection.push_pending = True
    if connection.next_due_at is None or connection.next_due_at > now:
        connection.next_due_at = now
    session.flush()
    return connection.id
