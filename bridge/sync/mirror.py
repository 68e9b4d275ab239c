"""Mirrored items: what one connection's external events leave in the store, and option changes.

Every remote event goes through :func:`bridge.rules.ingest` with the connection's
options before anything is written, so what a rule removes never reaches the
database; an event the rules now drop (it became transparent, cancelled,
declined) removes the version stored before. Mirrored items have origin
``connection:<id>`` and live under connection-scoped hrefs derived from the
remote id (:func:`href_for`), so the sync engine finds an item again without a
lookup by UID, and a rewrite with unchanged text writes nothing (no change row,
no new sync token: vdirsyncer #1168 is what happens otherwise).

UID scope. CalDAV wants a UID unique within one calendar collection (RFC 4791
§4.1; the store enforces UNIQUE(calendar_id, uid) and ``items.write`` raises
``ItemExists``), while the same UID arriving from two connections of one
calendar is two items (DESIGN.md). So the UID is stored as the rules produced
it unless another href of the calendar (another connection, a booking, a
client item) already holds it; then this item is stored under
``rules.hashed_uid(uid, uid_salt)``, keyed by this connection's salt. Once
stored that way an item keeps the hashed UID even after the other holder is
gone, because a UID that changes under one href confuses CalDAV clients. A
hashed UID that is itself taken (the same remote UID under two remote ids of
*one* connection, twice over) is refused with ``ItemExists``.

Option changes (:func:`change_options`). Tightening an option removes more, and
everything needed is stored: the new options are re-applied to every item of the
connection at once (the rules are idempotent on stored text, and
``X-CALBRIDGE-MADE-BUSY`` lets turning ``transparent_as_busy`` off drop what it
had kept). Loosening needs data that was never stored: the connection is marked
``baseline_due`` and the sync engine's next run is a baseline, which mails no one.

Writers of one calendar queue on its row (:func:`bridge.store.calendars.lock_for_write`)
before the UID check, so two connections of a calendar synced at once cannot both
take one UID. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import icalendar
from sqlalchemy.orm import Session

from bridge import rules
from bridge.ical.zones import parse_calendar
from bridge.store import calendars, changes, connections, items, mappings, outbox, writers
from bridge.store.errors import NotFound
from bridge.store.index import facts_of
from bridge.store.models import Calendar, Connection, Item, User
from bridge.store.objects import parse_object

NOTIFY_OPTION = "notify_customers"
BOOLEAN_OPTIONS = ("transparent_as_busy", "allday_as_busy", "anonymize_location", "no_personal_data",
                   "private_without_details", NOTIFY_OPTION)
OPTION_KEYS = (*BOOLEAN_OPTIONS, "sync_timezone")
"""The keys a connection's options JSON may hold: the options a user sets.

``notify_customers`` (off by default) is not a rule: it only decides whether the sync engine mails
customers (:mod:`bridge.notify.mirrored`). The other fields of :class:`~bridge.rules.ConnectionOptions`
come from elsewhere (the calendar's zone, the connection's salt, the owner's address).
"""
RULE_KEYS = tuple(key for key in OPTION_KEYS if key != NOTIFY_OPTION)

TIGHTEN_WHEN_ON = frozenset({"anonymize_location", "no_personal_data", "private_without_details"})
TIGHTEN_WHEN_OFF = frozenset({"transparent_as_busy", "allday_as_busy"})
# Every other change (sync_timezone) loosens: floating times stored before were already converted.

HREF_HASH_LENGTH = 40


class HrefTaken(Exception):
    """The connection-scoped href holds an item of another origin (a client wrote there); left alone."""

    def __init__(self, href: str, origin: str) -> None:
        super().__init__(f"{href!r} holds an item of origin {origin!r}")
        self.href = href
        self.origin = origin


class Unstorable(ValueError):
    """What the rules kept is not one clean calendar object (several UIDs, a repair Radicale would make)."""

    def __init__(self, href: str, reason: str) -> None:
        super().__init__(f"{href!r}: {reason}")
        self.href = href
        self.reason = reason


@dataclass(frozen=True)
class OptionChange:
    """What :func:`change_options` did, for the admin answer and the run log."""

    tightened: tuple[str, ...]
    loosened: tuple[str, ...]
    rewritten: int
    removed: int
    baseline_due: bool


def origin_of(connection: Connection) -> str:
    return f"connection:{connection.id}"


def href_for(connection: Connection | int, remote_id: str) -> str:
    """The stable, connection-scoped href of a remote item (the remote id may hold anything)."""
    connection_id = connection if isinstance(connection, int) else connection.id
    digest = hashlib.sha256(remote_id.encode("utf-8")).hexdigest()[:HREF_HASH_LENGTH]
    return f"c{connection_id}-{digest}.ics"


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` if every key is a known option with a value of its type; else ValueError."""
    if not isinstance(options, Mapping):
        raise ValueError("connection options must be an object")
    unknown = sorted(str(key) for key in options if key not in OPTION_KEYS)
    if unknown:
        raise ValueError(f"unknown connection options: {', '.join(unknown)} (known: {', '.join(OPTION_KEYS)})")
    for key in BOOLEAN_OPTIONS:
        if key in options and type(options[key]) is not bool:  # 0/1 and "true" are not booleans here
            raise ValueError(f"connection option {key} must be true or false, not {options[key]!r}")
    zone = options.get("sync_timezone")
    if zone is not None:
        if not isinstance(zone, str):
            raise ValueError(f"connection option sync_timezone must be an IANA time zone or null, not {zone!r}")
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"connection option sync_timezone: {zone!r} is not an IANA time zone") from exc
    return dict(options)


def options_for(connection: Connection, calendar: Calendar, owner: User) -> rules.ConnectionOptions:
    """The rule options of ``connection``: its JSON, its salt, the calendar's zone, the owner's address."""
    _check_belongs(connection, calendar, owner)
    stored = validate_options(connections.options_of(connection))
    stored.pop(NOTIFY_OPTION, None)
    return rules.ConnectionOptions(**stored, calendar_timezone=calendar.timezone,
                                   uid_salt=bytes.fromhex(connection.uid_salt),
                                   owner_addresses=frozenset({owner.email}))


def notifies_customers(connection: Connection) -> bool:
    """Whether the connection's ``notify_customers`` option is on (off when not set)."""
    return validate_options(connections.options_of(connection)).get(NOTIFY_OPTION) is True


def option_values(connection: Connection, calendar: Calendar, owner: User) -> dict[str, Any]:
    """Every option of ``connection`` with its value (the defaults filled in), as the API shows them."""
    rule_options = options_for(connection, calendar, owner)
    return {key: notifies_customers(connection) if key == NOTIFY_OPTION else getattr(rule_options, key)
            for key in OPTION_KEYS}


def store_remote(session: Session, connection: Connection, calendar: Calendar, owner: User,
                 remote: icalendar.Calendar, remote_id: str, now: datetime, *,
                 token_max_age_days: int | None = None) -> Item | None:
    """Store one remote item as the rules allow it; None (and the old version removed) if they drop it.

    Raises :class:`HrefTaken`, :class:`Unstorable`, ``ItemExists`` (see the module docstring) and
    ``expand.ExpansionError``, for the caller (the sync engine) to record in its run log.
    ``token_max_age_days`` (the settings' sync-token lifetime) prunes old changes now and then,
    as every writer does; without it the caller prunes.
    """
    options = options_for(connection, calendar, owner)
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])
    href = href_for(connection, remote_id)
    kept = rules.ingest(remote, options)
    if kept is None:
        removed = _remove_own(session, connection, calendar, href)
        if removed:
            _prune(session, calendar, token_max_age_days, now)
        return None
    item, written = _write(session, connection, calendar, href, kept, options.uid_salt, now)
    if written:
        _prune(session, calendar, token_max_age_days, now)
    return item


def remove_remote(session: Session, connection: Connection, calendar: Calendar, remote_id: str) -> bool:
    """Remove the mirrored item of ``remote_id``; False if this connection stores none there.

    The caller prunes old changes (it has the clock and the settings).
    """
    _check_belongs(connection, calendar, None)
    return _remove_own(session, connection, calendar, href_for(connection, remote_id))


def classify(before: rules.ConnectionOptions,
             after: rules.ConnectionOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tightened, loosened) option names between two option sets (see the module docstring)."""
    tightened: list[str] = []
    loosened: list[str] = []
    for name in RULE_KEYS:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if name in TIGHTEN_WHEN_ON:
            (tightened if new else loosened).append(name)
        elif name in TIGHTEN_WHEN_OFF:
            (loosened if new else tightened).append(name)
        else:
            loosened.append(name)
    return tuple(tightened), tuple(loosened)


def change_options(session: Session, connection: Connection, calendar: Calendar, owner: User,
                   new_options: Mapping[str, Any], now: datetime, *,
                   token_max_age_days: int | None = None) -> OptionChange:
    """Set the options in ``new_options`` (keys not given keep their value), re-apply or request a baseline.

    Raises ValueError for an unknown key or a value of the wrong type, before anything changes.
    Turning ``notify_customers`` off drops the customers kept on the mappings; turning it on needs no
    baseline (the next change is compared with what the mapping keeps, or told as new).
    """
    given = validate_options(new_options)
    before = options_for(connection, calendar, owner)
    after = dataclasses.replace(before, **{key: value for key, value in given.items() if key != NOTIFY_OPTION})
    tightened, loosened = classify(before, after)
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])
    rewritten = removed = 0
    if tightened:
        for item in items.of_origin(session, calendar.id, origin_of(connection)):
            kept = rules.ingest(parse_calendar(item.text), after)
            if kept is None:
                items.delete(session, calendar, item.href, writers.connection(connection.id))
                mappings.set_local_etag(session, connection.id, item.href, "")
                removed += 1
            else:
                stored, written = _write(session, connection, calendar, item.href, kept, after.uid_salt, now)
                if not written:
                    continue
                mappings.set_local_etag(session, connection.id, item.href, stored.etag)
                rewritten += 1
            _prune(session, calendar, token_max_age_days, now)
    if given.get(NOTIFY_OPTION) is False:
        outbox.forget_customers(session, connection.id)
    connections.save_options(session, connection, {**connections.options_of(connection), **given},
                             request_baseline=bool(loosened))
    return OptionChange(tightened, loosened, rewritten, removed, connection.baseline_due)


def _check_belongs(connection: Connection, calendar: Calendar, owner: User | None) -> None:
    """Guard against mixing rows up: a wrong calendar would put items where they do not belong."""
    if connection.calendar_id != calendar.id:
        raise ValueError(f"connection {connection.id} belongs to calendar {connection.calendar_id}, not {calendar.id}")
    if owner is not None and owner.id != calendar.owner_id:
        raise ValueError(f"user {owner.id} does not own calendar {calendar.id}")


def _write(session: Session, connection: Connection, calendar: Calendar, href: str, kept: icalendar.Calendar,
           salt: bytes, now: datetime) -> tuple[Item, bool]:
    """Store ``kept`` at ``href`` with the UID rule of the module docstring; (item, whether it was written)."""
    current = items.by_href(session, calendar.id, href)
    origin = origin_of(connection)
    if current is not None and current.origin != origin:
        raise HrefTaken(href, current.origin)
    uids = {str(c.get("UID", "")) for c in kept.subcomponents if c.name == "VEVENT"}
    if len(uids) != 1 or "" in uids:
        raise Unstorable(href, f"{len(uids)} UIDs in one item")
    uid = uids.pop()
    stored_uid = _stored_uid(session, calendar.id, href, uid, salt, current)
    if stored_uid != uid:
        for component in kept.subcomponents:
            if component.name == "VEVENT":
                del component["UID"]
                component.add("UID", stored_uid)
    parsed = parse_object(kept.to_ical().decode())
    if parsed is None:
        raise Unstorable(href, "not a clean calendar object")
    if current is not None and current.text == parsed.text:
        return current, False
    described = facts_of(parsed.calendar, zoneinfo.ZoneInfo(calendar.timezone), now)
    item, _ = items.write(session, calendar, items.NewItem(
        href=href, uid=parsed.uid, etag=items.etag_of(parsed.text), text=parsed.text, facts=described.facts,
        occurrences=described.instances, occurrences_until=described.instances_until),
        writers.connection(connection.id))
    return item, True


def _stored_uid(session: Session, calendar_id: int, href: str, uid: str, salt: bytes, current: Item | None) -> str:
    """``uid``, or its hashed form where another href holds it or this href already uses that form."""
    hashed = rules.hashed_uid(uid, salt)
    if current is not None and current.uid == hashed:
        return hashed
    holder = items.href_of_uid(session, calendar_id, uid)
    return uid if holder is None or holder == href else hashed


def remove_item(session: Session, connection: Connection, calendar: Calendar, href: str) -> bool:
    """Remove a mirrored item of this connection by href (one whose remote id is unknown)."""
    _check_belongs(connection, calendar, None)
    return _remove_own(session, connection, calendar, href)


def _remove_own(session: Session, connection: Connection, calendar: Calendar, href: str) -> bool:
    """Remove the item at ``href`` if this connection wrote it (never a client's or a booking)."""
    current = items.by_href(session, calendar.id, href)
    if current is None or current.origin != origin_of(connection):
        return False
    try:
        items.delete(session, calendar, href, writers.connection(connection.id))
    except NotFound:  # removed by a concurrent writer since we read it
        return False
    return True


def _prune(session: Session, calendar: Calendar, max_age_days: int | None, now: datetime) -> None:
    if max_age_days is not None:
        changes.prune_now_and_then(session, calendar, max_age_days, now)
