"""SQLAlchemy 2 typed models: tenant, user, calendar, item, occurrence, change, service token,
connection, mapping, sync run, booking, webhook, push channel, outbox, admin session, login failure.

Every table carries ``tenant_id`` so that isolation can be checked on any row.
Times are aware UTC datetimes (stored naive UTC, which both SQLite and
PostgreSQL compare correctly).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The earliest and latest instants an index column can hold: an item without
# any date spans everything, an open-ended series ends at UNBOUNDED.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
UNBOUNDED = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive UTC on disk."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, parse the stored text with ``datetime.fromisoformat`` (C) instead of the
        dialect's regular expression: free/busy reads thousands of these per request."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def parse(value: Any) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, datetime):
                return value.replace(tzinfo=UTC)
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

        return parse


def utcnow() -> datetime:
    return datetime.now(UTC)


UtcTime = Annotated[datetime, mapped_column(UTCDateTime())]
PrimaryKey = Annotated[int, mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _tenant_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)


class Tenant(Base):
    """One business using the booking system."""

    __tablename__ = "tenant"
    id: Mapped[PrimaryKey]
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class User(Base):
    """A login of a tenant; the login is the CalDAV principal name, unique installation-wide."""

    __tablename__ = "user"
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    login: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8), default="de")
    role: Mapped[str] = mapped_column(String(16), default="member")  # admin | member | service
    password_hash: Mapped[str] = mapped_column(String(255))
    props: Mapped[str] = mapped_column(Text, default="{}")  # principal's WebDAV properties (JSON)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    # Set when the user was removed: the row stays, renamed and without credentials, until the
    # change rows of their removed calendars expire (bridge.removal).
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Calendar(Base):
    """An internal calendar at /dav/<owner-login>/<slug>/."""

    __tablename__ = "calendar"
    __table_args__ = (UniqueConstraint("owner_id", "slug"),)
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(128))
    tag: Mapped[str] = mapped_column(String(16), default="VCALENDAR")
    timezone: Mapped[str] = mapped_column(String(64))
    props: Mapped[str] = mapped_column(Text, default="{}")  # WebDAV properties as Radicale names them (JSON)
    bcc_provider: Mapped[bool] = mapped_column(Boolean, default=False)  # blind copy of booking mails to the owner
    # "client": made by a CalDAV client (MKCALENDAR), which may delete it while it holds no bookings
    # or connections; "provisioned": made by the CLI, the API or the admin page, never deleted over CalDAV.
    creator: Mapped[str] = mapped_column(String(16), default="provisioned", server_default="provisioned")
    # Set when the calendar was removed: hidden everywhere but in the change feed until its changes expire.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Sync state: a random epoch makes tokens of a deleted and recreated calendar invalid;
    # change_counter is bumped under a row lock by every writing transaction.
    sync_epoch: Mapped[str] = mapped_column(String(16))
    change_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    changes_pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    modified_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class Item(Base):
    """One calendar object resource: iCalendar text plus the columns queries filter on."""

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("calendar_id", "href"),
        UniqueConstraint("calendar_id", "uid"),
        Index("ix_item_span", "calendar_id", "span_class", "span_start"),
    )
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    href: Mapped[str] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(255))
    etag: Mapped[str] = mapped_column(String(80))
    component: Mapped[str] = mapped_column(String(16))  # VEVENT, VTODO, VJOURNAL, VCARD ...
    text: Mapped[str] = mapped_column(Text)
    # The instants of the first (master) instance, for free/busy and the booking engine.
    dtstart: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dtend: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The span every instance lies in (Radicale's time range); UNBOUNDED for open-ended series.
    span_start: Mapped[UtcTime]
    span_end: Mapped[UtcTime]
    # log2 bucket of the span's length, so that overlap queries scan a bounded range (see queries).
    span_class: Mapped[int] = mapped_column(SmallInteger)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    transparency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    klass: Mapped[str | None] = mapped_column("class", String(16), nullable=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    origin: Mapped[str] = mapped_column(String(40), default="client")
    # How the master instance counts for free/busy (RFC 5545 FBTYPE: BUSY, BUSY-TENTATIVE,
    # BUSY-UNAVAILABLE), None when it is free (transparent, cancelled); see bridge.expand.
    busy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Recurring events: instances are materialised in ``occurrence`` up to this instant
    # (UNBOUNDED: all of them); None: not materialised, time-range checks fall back to parsing.
    occurrences_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    modified_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class Occurrence(Base):
    """One instance of a recurring event: time-range queries test these rows instead of
    expanding the series."""

    __tablename__ = "occurrence"
    __table_args__ = (Index("ix_occurrence_item_start", "item_id", "start"),)
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    start: Mapped[UtcTime]
    end: Mapped[UtcTime]
    busy: Mapped[str | None] = mapped_column(String(16), nullable=True)  # as Item.busy, per instance


class Change(Base):
    """Append-only record of a write or delete, numbered per calendar in commit order."""

    __tablename__ = "change"
    __table_args__ = (UniqueConstraint("calendar_id", "number"),)
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(BigInteger)
    href: Mapped[str] = mapped_column(String(255))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class ServiceToken(Base):
    """A bearer token of the booking engine for /api/v1; only its SHA-256 is stored
    (the token is 256 random bits, so a fast hash is enough)."""

    __tablename__ = "service_token"
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(120))
    scope: Mapped[str] = mapped_column(String(16), default="engine")  # engine | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Connection(Base):
    """A link between one calendar and one external calendar: provider, credentials
    (encrypted), the rule options, direction, sync window, sync state and scheduling."""

    __tablename__ = "connection"
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(16))  # caldav, icloud, ics, google, microsoft, exchange
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON of bridge.rules.ConnectionOptions fields
    # Keys the stable UID hash of the no-personal-data rule; fixed for the connection's life.
    uid_salt: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when a loosened option needs data that was never stored: the next run is a baseline.
    baseline_due: Mapped[bool] = mapped_column(Boolean, default=False)
    direction: Mapped[str] = mapped_column(String(8), default="both")  # both | inbound | outbound
    server_url: Mapped[str] = mapped_column(String(1000), default="")  # where the account lives (no secret)
    remote_calendar: Mapped[str] = mapped_column(String(1000), default="")  # the chosen remote calendar's id
    remote_name: Mapped[str] = mapped_column(String(200), default="")
    credentials: Mapped[str] = mapped_column(Text, default="")  # encrypted JSON (bridge.secrets)
    window_past_days: Mapped[int] = mapped_column(Integer, default=30)
    window_future_days: Mapped[int] = mapped_column(Integer, default=548)
    sync_state: Mapped[str | None] = mapped_column(Text, nullable=True)  # the adapter's opaque state
    interval_seconds: Mapped[int] = mapped_column(Integer, default=300)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed runs, for back-off
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)  # credentials refused: no retries
    # The provider pushed a change notice (/hooks): the next run is due now and is logged as a push.
    push_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lease: one worker syncs a connection at a time, until the lease expires.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class Mapping(Base):
    """The status table of a connection: which item is which remote event, as of the last sync
    (vdirsyncer's design): remote id and etag, local etag, and the content hash both sides had."""

    __tablename__ = "mapping"
    __table_args__ = (UniqueConstraint("connection_id", "remote_id"), UniqueConstraint("connection_id", "item_href"))
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    item_href: Mapped[str] = mapped_column(String(255))
    remote_id: Mapped[str] = mapped_column(String(1000))
    remote_etag: Mapped[str] = mapped_column(String(255), default="")
    local_etag: Mapped[str] = mapped_column(String(80), default="")
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    owner: Mapped[str] = mapped_column(String(8))  # local | remote: whose version wins a conflict
    # While the connection's notify_customers is on: the customer's address found in the event and the
    # time and place they were last told, encrypted JSON (bridge.notify.mirrored), because the deletion
    # that needs them carries no summary or description.
    customer: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class SyncRun(Base):
    """One row of the sync log."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_connection_started", "connection_id", "started_at"),)
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | manual | reset | push | options
    started_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(8), default="running")  # running | ok | partial | failed | held
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: per direction and kind
    requests: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)  # never personal data


class Booking(Base):
    """An appointment written by the booking engine; its event is the item it points to."""

    __tablename__ = "booking"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"), index=True)
    item_href: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="confirmed")  # confirmed | cancelled
    start: Mapped[UtcTime]
    end: Mapped[UtcTime]
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(254))
    customer_language: Mapped[str] = mapped_column(String(8), default="de")
    notes: Mapped[str] = mapped_column(Text, default="")
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    modified_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class Webhook(Base):
    """Where a tenant's changes are posted (at most one per tenant), signed with an encrypted secret.
    Delivery follows ``cursor`` (a change feed cursor, bridge.changefeed); there is no outbox."""

    __tablename__ = "webhook"
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[str] = mapped_column(Text)  # encrypted (bridge.secrets) "whsec_..." signing secret
    cursor: Mapped[str] = mapped_column(Text)  # the feed position after the last page the receiver accepted
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed deliveries, for back-off
    # The earliest time of the next delivery (NULL: at the next poll); also the claim of a sender.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # HTTP status of the last attempt
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)  # never personal data
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class PushChannel(Base):
    """A push subscription a provider holds for one connection (Google watch channel, Graph subscription):
    the hook finds the connection by ``channel_id`` and checks the token the provider echoes against
    ``token_hash`` (SHA-256: the token itself is not kept). Renewed before ``expires_at``."""

    __tablename__ = "push_channel"
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str] = mapped_column(String(200), unique=True)
    resource_id: Mapped[str] = mapped_column(String(1000))
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[UtcTime]
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)


class Outbox(Base):
    """A queued e-mail (bridge.notify), written in the transaction of the change that causes it.
    ``dedupe_key`` (a hash of connection, item and change) makes a change queue one mail only;
    ``message_id`` is fixed at queuing, so a resend after a crash carries the same Message-ID.
    Recipients and message are encrypted (bridge.secrets) and dropped once the mail is sent;
    ``last_error`` holds an SMTP code or an error's class, never an address or content."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # notice_* | booking_* | alert_* (bridge.notify.message)
    message_id: Mapped[str] = mapped_column(String(255))
    envelope: Mapped[str] = mapped_column(Text, default="")  # encrypted JSON: sender and every recipient (Bcc too)
    content: Mapped[str] = mapped_column(Text, default="")  # encrypted RFC 5322 message, without any Bcc header
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The earliest time of the next attempt (NULL: at once); also a sender's claim on the row.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)  # never personal data
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AdminSession(Base):
    """A signed-in browser of /admin (bridge.web.admin): only the SHA-256 of the cookie's random token
    is stored, so a copy of the database signs no one in; the CSRF secret is the session's own."""

    __tablename__ = "admin_session"
    id: Mapped[PrimaryKey]
    tenant_id: Mapped[int] = _tenant_fk()
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[UtcTime] = mapped_column(default=utcnow)
    expires_at: Mapped[UtcTime] = mapped_column(index=True)


class LoginFailure(Base):
    """One failed /admin login, counted per login and per client address (both as SHA-256 keys, so
    neither is kept in clear). It has no tenant: a failure for a login that does not exist has none."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_failed_at", "key_hash", "failed_at"),)
    id: Mapped[PrimaryKey]
    key_hash: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[UtcTime] = mapped_column(default=utcnow)
