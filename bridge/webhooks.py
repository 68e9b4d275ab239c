"""Webhooks: a tenant's item changes posted to the URL it configured, signed and retried.

A tenant has at most one webhook. Delivery follows a cursor of the change feed
(:mod:`bridge.changefeed`), not an outbox: a due webhook gets the next page of its tenant's changes
after its cursor, as one POST whose JSON body is::

    {"changes": [...], "next": "<cursor after this page>", "more": false, "restarted": false}

``changes`` holds the feed's items (``GET /api/v1/changes``), ``next`` is a feed cursor (the
receiver may also read on with ``GET /api/v1/changes?since=...``), ``more`` says that the next
page follows at once. The cursor moves on only when the receiver answers 2xx; any other answer,
a redirect (never followed) or a network error backs off exponentially (10 s doubling, at most an
hour), and the same page goes again with the same ``webhook-id`` (at least once; receivers dedupe
by it). A page without changes is not sent. When the cursor has expired (the history was pruned
past it), delivery restarts from the oldest kept change and says ``"restarted": true`` (even if
nothing is left to send): the receiver re-reads the bookings it tracks.

Requests are signed as the Standard Webhooks specification says: ``webhook-id`` (a hash of the
tenant and the page's cursors, so the same page has the same id), ``webhook-timestamp`` (seconds
since the epoch) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
keyed with the base64 part of the ``whsec_...`` secret. The secret is stored encrypted
(:mod:`bridge.secrets`) and shown once, when it is made.

Several senders (the server's thread, ``calbridge worker`` processes) share the work: a sender
claims due webhooks by moving ``next_attempt_at`` ahead (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), and writes the outcome only if the cursor and URL are still those it sent from, so a
sender whose claim ran out can cause a repeat, never a loss. What is recorded of a failure is the
HTTP status or the error's class, never a body or event content.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets as random_secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bridge import changefeed
from bridge.secrets import SecretError, Secrets
from bridge.store.db import Store
from bridge.store.models import Webhook

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0)
PAGE_LIMIT = changefeed.DEFAULT_LIMIT
FIRST_RETRY_SECONDS = 10
MAX_BACKOFF_SECONDS = 3600
CLAIM_SECONDS = 600  # a sender's hold on the webhooks of one round; then another sender may take them
ROUND_SIZE = 10  # webhooks one sender claims per round
MAX_URL_LENGTH = 1000
SECRET_PREFIX = "whsec_"
USER_AGENT = "calbridge-webhooks"


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- pure parts: URL, secret, signature, back-off -------------------------------------------------

def check_url(url: str) -> str:
    """The URL if a webhook may post to it: http or https, with a host, no credentials, at most
    1000 characters; ValueError otherwise."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValueError(f"a webhook URL has 1 to {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError("the webhook URL is not a valid URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("a webhook URL must be http:// or https:// with a host")
    if parsed.userinfo:
        raise ValueError("a webhook URL must not hold credentials (requests are signed instead)")
    return url


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a request (Standard Webhooks, v1 = HMAC-SHA256)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    key = base64.b64decode(secret[len(SECRET_PREFIX):])
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_id(tenant_id: int, cursor_from: str, cursor_to: str) -> str:
    """The ``webhook-id`` of a page: the same page (same tenant, same cursors) has the same id."""
    digest = hashlib.sha256(f"{tenant_id}\n{cursor_from}\n{cursor_to}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def retry_delay(failures: int) -> timedelta:
    """The wait after ``failures`` consecutive failed deliveries: 10 s, doubled per failure, at most an hour."""
    exponent = min(max(failures - 1, 0), 20)
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2**exponent, MAX_BACKOFF_SECONDS))


# -- the webhook row ------------------------------------------------------------------------------

def webhook_of(session: Session, tenant_id: int) -> Webhook | None:
    return session.scalar(select(Webhook).where(Webhook.tenant_id == tenant_id))


def set_webhook(session: Session, tenant_id: int, url: str, secrets: Secrets) -> tuple[Webhook, str]:
    """Point the tenant's webhook at ``url`` with a new secret; returns the row and the secret (in the
    clear: show it once). A new webhook starts after the newest change; replacing the URL keeps the
    cursor (nothing pending is lost) and forgets the failures."""
    url = check_url(url)
    secret = new_secret()
    webhook = webhook_of(session, tenant_id)
    if webhook is None:
        webhook = Webhook(tenant_id=tenant_id, url=url, secret=secrets.encrypt(secret),
                          cursor=changefeed.cursor_at_end(session, tenant_id), failures=0)
        session.add(webhook)
    else:
        webhook.url = url
        webhook.secret = secrets.encrypt(secret)
        webhook.failures = 0
        webhook.next_attempt_at = None
        webhook.last_status = None
        webhook.last_error = None
    session.flush()
    return webhook, secret


def remove_webhook(session: Session, tenant_id: int) -> bool:
    """Remove the tenant's webhook; False if it had none."""
    webhook = webhook_of(session, tenant_id)
    if webhook is None:
        return False
    session.execute(delete(Webhook).where(Webhook.id == webhook.id))
    return True


def rotate_secrets(session: Session, rotate: Callable[[str], str]) -> int:
    """Re-encrypt every stored webhook secret with ``rotate``; returns how many were rewritten."""
    count = 0
    for webhook in session.scalars(select(Webhook)):
        webhook.secret = rotate(webhook.secret)
        count += 1
    return count


# -- delivery -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Attempt:
    """What one delivery started from; the outcome is written only if cursor and URL are unchanged."""

    webhook_id: int
    tenant_id: int
    url: str
    secret: str  # encrypted
    cursor: str
    failures: int


def deliver_due(store: Store, secrets: Secrets, client: httpx.Client, now: datetime, *,
                limit: int = ROUND_SIZE) -> int:
    """One round: claim up to ``limit`` due webhooks and send each the next page of its tenant's
    changes; returns how many pages the receivers accepted."""
    delivered = 0
    for webhook_id in _claim(store, now, limit):
        try:
            delivered += _deliver(store, secrets, client, webhook_id, now)
        except Exception as exc:  # e.g. the database went away: the claim runs out and another round retries
            log.error("webhook %d: delivery failed: %s", webhook_id, type(exc).__name__)
    return delivered


def _claim(store: Store, now: datetime, limit: int) -> list[int]:
    """Hold up to ``limit`` due webhooks (most overdue first, new ones before all) for CLAIM_SECONDS."""
    query = (select(Webhook.id)
             .where((Webhook.next_attempt_at.is_(None)) | (Webhook.next_attempt_at <= now))
             .order_by(Webhook.next_attempt_at.asc().nulls_first(), Webhook.id).limit(limit))
    if not store.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    with store.write() as session:
        ids = list(session.scalars(query))
        if ids:
            session.execute(update(Webhook).where(Webhook.id.in_(ids))
                            .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
                            .execution_options(synchronize_session=False))
    return ids


def _deliver(store: Store, secrets: Secrets, client: httpx.Client, webhook_id: int, now: datetime) -> int:
    with store.read() as session:  # one snapshot: the page and its cursor agree
        webhook = session.get(Webhook, webhook_id)
        if webhook is None:
            return 0
        attempt = _Attempt(webhook.id, webhook.tenant_id, webhook.url, webhook.secret, webhook.cursor,
                           webhook.failures)
        page = _next_page(session, attempt.tenant_id, attempt.cursor)
    if not page.changes and not page.restarted:
        # Nothing to send; the cursor may still move (property changes, new calendars).
        _record(store, attempt, cursor=page.next, failures=0, next_attempt_at=now)
        return 0
    body = json.dumps({"changes": page.changes, "next": page.next, "more": page.more,
                       "restarted": page.restarted}, separators=(",", ":")).encode()
    status, error = _post(client, secrets, attempt, message_id(attempt.tenant_id, attempt.cursor, page.next),
                          now, body)
    if status is not None and 200 <= status < 300:
        _record(store, attempt, cursor=page.next, failures=0, next_attempt_at=now, last_status=status,
                last_error=None)
        return 1
    failures = attempt.failures + 1
    log.warning("webhook %d: delivery failed (%s); attempt %d, next in %s", webhook_id, error, failures,
                retry_delay(failures))
    _record(store, attempt, cursor=attempt.cursor, failures=failures, next_attempt_at=now + retry_delay(failures),
            last_status=status, last_error=error)
    return 0


def _next_page(session: Session, tenant_id: int, cursor: str) -> changefeed.Page:
    """The page after ``cursor``; an expired (or unreadable) cursor restarts from the oldest kept change."""
    try:
        positions = changefeed.decode_cursor(cursor)
    except changefeed.InvalidCursor:
        return dataclasses.replace(changefeed.page(session, tenant_id, None, PAGE_LIMIT), restarted=True)
    return changefeed.page(session, tenant_id, positions, PAGE_LIMIT, restart=True)


def _post(client: httpx.Client, secrets: Secrets, attempt: _Attempt, msg_id: str, now: datetime,
          body: bytes) -> tuple[int | None, str]:
    """(HTTP status or None, what to record if it failed). The response body is never read."""
    try:
        url = check_url(attempt.url)
        secret = secrets.decrypt(attempt.secret)
        timestamp = int(now.timestamp())
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": msg_id,
                   "webhook-timestamp": str(timestamp), "webhook-signature": sign(secret, msg_id, timestamp, body)}
    except SecretError:
        return None, "the secret does not decrypt with the configured keys"
    except ValueError:
        return None, "the URL or the secret is not valid"
    try:
        with client.stream("POST", url, content=body, headers=headers, timeout=TIMEOUT,
                           follow_redirects=False) as response:
            return response.status_code, f"HTTP {response.status_code}"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return None, type(exc).__name__


def _record(store: Store, attempt: _Attempt, **values: Any) -> None:
    with store.write() as session:
        session.execute(update(Webhook)
                        .where(Webhook.id == attempt.webhook_id, Webhook.cursor == attempt.cursor,
                               Webhook.url == attempt.url)
                        .values(**values).execution_options(synchronize_session=False))


class WebhookSender:
    """Delivers due webhooks every ``poll_seconds``, and at once again after a round that delivered
    (more may be waiting). Runs beside the sync worker (bridge.sync.service, ``calbridge worker``)."""

    def __init__(self, store: Store, secrets: Secrets, *, client: httpx.Client | None = None,
                 poll_seconds: float = 5.0, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.secrets = secrets
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self.poll_seconds = poll_seconds
        self.clock = clock

    def run_pending(self) -> int:
        """One round of due webhooks; returns how many pages were accepted."""
        return deliver_due(self.store, self.secrets, self.client, self.clock())

    def serve(self, stop: threading.Event) -> None:
        """Run rounds until ``stop`` is set; a round in progress is finished first."""
        while not stop.is_set():
            try:
                delivered = self.run_pending()
            except Exception as exc:  # the database may be away for a while: keep polling
                log.error("claiming due webhooks failed: %s", type(exc).__name__)
                delivered = 0
            if delivered == 0:
                stop.wait(self.poll_seconds)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
