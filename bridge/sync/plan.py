"""The plan of one sync run: what is known in, the ordered actions out. Pure: no I/O, no clock.

Like vdirsyncer, the whole run is decided before anything is written, from three things:
the remote side as fetched (:class:`RemoteSide`), the calendar's items that matter to this
connection (:class:`LocalItem`) and the mapping table as of the last sync (:class:`MappingRow`).
Unlike vdirsyncer, the sides are not symmetric: ownership decides (DESIGN.md).

Change detection. A side changed when its etag differs from the mapping's *and* its content hash
differs from the mapping's ``content_hash``; a new etag over the same content only refreshes the
mapping (:class:`UpdateMapping`), so nothing is rewritten or mailed (vdirsyncer #1168). The hash
must cover the times (a moved event is a changed event), and for items we own (bookings, client
items) it must be computed the same way on both sides (a canonical form of what is pushed). For
mirrored items only the remote hash is compared: their local copy is what the rules made of it
and CalDAV clients cannot change it, so a differing local etag only marks the :class:`Conflict`
entry when the remote changed too (the engine should keep ``local_etag`` current when it rewrites
mirrored items itself, on an option change).

Remote presence of a mapped event: listed in ``changed`` (with its version); in ``deleted``, or
missing from a ``complete`` listing, = gone; otherwise unchanged. A mapped event missing from a
complete listing whose local item lies outside the window left the window: unchanged, not a
deletion. Only events listed in ``changed`` are ingested or applied (the engine has their content).

Per mapping (owner ``remote`` = mirrored, ``local`` = booking or client item):

- mirrored, remote changed: :class:`MirrorUpdate` (preceded by ``Conflict(winner="remote")`` when the
  local etag moved too); gone: :class:`MirrorDelete`, or :class:`ForgetMapping` if no local item
  is left (the rules dropped it); in a baseline every listed mirrored event is re-ingested
  (``MirrorUpdate``, notify False), so options loosened since are applied and what the store
  holds converges to the remote set (the store skips rewrites with unchanged text).
- owned, remote changed only: :class:`ApplyRemoteToOwned`; gone and unchanged here:
  :class:`CancelOwned`; changed here only: :class:`PushUpdate`; deleted here: :class:`PushDelete`;
  both changed: ``Conflict(winner="local")`` then ``PushUpdate`` (or only a mapping refresh when
  both hold the same content); changed here and gone there: ``Conflict``, ``ForgetMapping``,
  ``PushCreate``; deleted here and changed there: ``Conflict``, ``PushDelete``.
- both vanished: ``ForgetMapping``.

Unmapped events and items. A listed event carrying this connection's push key (:func:`push_key`)
is ours: it is linked to its item (:class:`LinkMapping`: a crash after the remote create and before
the mapping was saved), or deleted remotely when no unmapped item claims it; it is never mirrored
(an item never goes back to the connection it came from). Any other listed event in the window is
mirrored (:class:`MirrorCreate`). An unmapped booking or client item in the window is pushed
(:class:`PushCreate`). An unmapped mirrored item of this connection that a complete listing does
not explain is removed (``MirrorDelete`` without remote id, notify False). Items of other
connections are never considered (nothing mirrored from one connection is pushed to another).

Direction. ``inbound``: nothing is pushed; remote changes and deletions of owned items still apply
when the item is given and unchanged here; a change made here waits (no action) until the
direction allows pushing, and a conflict only acknowledges the remote version in the mapping.
``outbound``: nothing is mirrored (mirrored mappings are left as they are), and the external side
is a copy: a remote change to an owned item is overwritten (``PushUpdate``, no Conflict entry),
a remote deletion re-creates it (``ForgetMapping`` then ``PushCreate``); nothing is cancelled here.

Fail closed, per direction. Deletions are held, listed in ``Plan.held_deletions`` and absent from
``Plan.actions``, unless ``confirm_deletions``; every other action still runs. Each direction is
judged on its own, against what its side holds, so a wipe on one side cannot hide behind the
size of the other, and a hold of one direction lets the other's deletions through:

- inbound, deletions here (:class:`MirrorDelete`, :class:`CancelOwned`): held when a complete
  listing is empty, or when there are more than ``max(min_delete_count, max_delete_share *
  len(mappings))`` of them (every mapped event is something the external calendar held);
- outbound, deletions there (:class:`PushDelete` of a mapped item): held when there are more than
  ``max(min_delete_count, max_delete_share * pushed)``, ``pushed`` being the mappings owned
  ``local`` (what we pushed), so a CalDAV client deleting the calendar's items cannot empty the
  practitioner's external calendar, while a single cancelled booking still goes out. The
  ``Conflict`` entry of a held deletion waits with it. Deleting an orphan of our own push (no
  mapping, no item) removes nothing anyone pushed on purpose: never held.

The engine must not save the fetched state of a held run (an incremental delta would not report
remote deletions again; the local deletions are seen again anyway: the mappings stay).

Versions. Every action that changes an item or a booking here (:class:`MirrorCreate`,
:class:`MirrorUpdate`, :class:`MirrorDelete`, :class:`ApplyRemoteToOwned`, :class:`CancelOwned`)
carries ``seen``, the :class:`LocalVersion` of its href the plan was made from: the item's etag (""
when there was none) and, for a booking, its state. The applier compares it inside the write
transaction and skips the action when it moved (a CalDAV or API write made while the run was in
flight): the run then must not save its state, so the next run plans the remote change again,
against what is here now. Actions that only push (their content is read at apply time) or only
touch the mapping (a moved etag shows as a change to the next plan) carry none.

What a plan cannot see: changes to events outside the window when the listing is complete. A push
to such an event may meet ``RemoteNotFound`` (forget the mapping) or ``PreconditionFailed`` (a
conflict the plan missed: the owner, here, wins all the same). And a complete listing cannot tell
an event moved out of the window from a deleted one: one whose item lies in the window is gone.

Actions of one item come in the order they must run; actions of different items are independent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

from bridge.adapters.base import Window

Direction: TypeAlias = Literal["both", "inbound", "outbound"]
Owner: TypeAlias = Literal["local", "remote"]
_State: TypeAlias = Literal["listed", "gone", "unchanged"]

OWNED_ORIGINS = frozenset({"booking", "client"})
"""Origins of the items the internal side owns: pushed out, never mirrored in."""


def connection_origin(connection_id: int | str) -> str:
    """The origin of the items mirrored from one connection."""
    return f"connection:{connection_id}"


def push_key_prefix(connection_id: int | str) -> str:
    """What every push key of one connection starts with (lowercase base32hex, as Google ids need)."""
    return f"cb{connection_id}v"


def push_key(connection_id: int | str, item_href: str) -> str:
    """The idempotency key of pushing ``item_href`` through one connection: stable across runs and
    crashes, distinct per connection (two calendars connected to one external calendar)."""
    return push_key_prefix(connection_id) + hashlib.sha256(item_href.encode("utf-8")).hexdigest()


# -- inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteVersion:
    """One remote event as fetched: version, content hash, span (UTC; end None = open-ended), and
    the push key the bridge wrote into it when it created it (None for events made elsewhere)."""

    etag: str
    content_hash: str
    start: datetime
    end: datetime | None
    key: str | None = None


@dataclass(frozen=True)
class RemoteSide:
    """An adapter's :class:`~bridge.adapters.base.Delta`, reduced to what planning needs.

    ``complete``: ``changed`` lists every event in ``window``; mapped events missing from it are
    deleted unless their local item lies outside the window. An id both changed and deleted
    counts as changed (it exists now).
    """

    changed: Mapping[str, RemoteVersion]
    deleted: frozenset[str]
    complete: bool
    window: Window


@dataclass(frozen=True)
class LocalItem:
    """An item of the calendar: href, etag, content hash, origin, span (UTC; end None = open-ended),
    and the state of the booking behind it (None: not a booking)."""

    href: str
    etag: str
    content_hash: str
    origin: str  # booking | client | connection:<id>
    start: datetime
    end: datetime | None
    booking: str | None = None


@dataclass(frozen=True)
class LocalVersion:
    """What an action that writes here was planned against (module docstring, Versions): the item's
    etag, "" when its href held no item, and the state of its booking, if it is one."""

    etag: str = ""
    booking: str | None = None


NO_ITEM = LocalVersion()


def version_of(item: LocalItem | None) -> LocalVersion:
    """The version an action on this item (None: none at its href) is planned against."""
    return NO_ITEM if item is None else LocalVersion(item.etag, item.booking)


@dataclass(frozen=True)
class MappingRow:
    """One row of the connection's mapping table, as of the last sync."""

    item_href: str
    remote_id: str
    remote_etag: str
    local_etag: str
    content_hash: str
    owner: Owner


# -- actions ------------------------------------------------------------------------------
# ``notify``: a customer-visible change made in the external calendar, outside a baseline.

@dataclass(frozen=True)
class MirrorCreate:
    """Ingest the listed event and store it at ``item_href`` (its connection-scoped href); save the
    mapping even when the rules drop it (local etag empty), so it is not offered again."""

    remote_id: str
    item_href: str
    notify: bool = False
    seen: LocalVersion = NO_ITEM


@dataclass(frozen=True)
class MirrorUpdate:
    """Ingest the listed event again over the mirrored item (or afresh, if the rules had dropped it)."""

    remote_id: str
    item_href: str
    notify: bool = False
    seen: LocalVersion = NO_ITEM


@dataclass(frozen=True)
class MirrorDelete:
    """Remove the mirrored item and its mapping; ``remote_id`` None: an item without a mapping."""

    remote_id: str | None
    item_href: str
    notify: bool = False
    seen: LocalVersion = NO_ITEM


@dataclass(frozen=True)
class ApplyRemoteToOwned:
    """The external side changed an item we own (a moved booking) and we did not: apply it here,
    keeping the booking's own data; then save the mapping (remote version, new local etag)."""

    remote_id: str
    item_href: str
    notify: bool = False
    seen: LocalVersion = NO_ITEM


@dataclass(frozen=True)
class CancelOwned:
    """The external side deleted an item we own, unchanged here: cancel the booking or delete the
    client item, and forget the mapping. A cancelled booking must not be given to the next plan as
    a local item (it would be pushed again)."""

    remote_id: str
    item_href: str
    notify: bool = False
    seen: LocalVersion = NO_ITEM


@dataclass(frozen=True)
class PushCreate:
    """Create the item remotely with ``key`` (``Adapter.create``); save the mapping. A create that
    finds an earlier attempt's event with other content updates it before the mapping is saved."""

    item_href: str
    key: str
    notify: bool = False


@dataclass(frozen=True)
class PushUpdate:
    """Replace the remote event if it still has ``remote_etag``; save the mapping."""

    item_href: str
    remote_id: str
    remote_etag: str
    notify: bool = False


@dataclass(frozen=True)
class PushDelete:
    """Delete the remote event (if it still has ``remote_etag``); forget the mapping of
    ``item_href``, if any (None: an orphan of our own push)."""

    remote_id: str
    remote_etag: str
    item_href: str | None
    notify: bool = False


@dataclass(frozen=True)
class ForgetMapping:
    """Drop the mapping row; nothing else changes."""

    item_href: str
    remote_id: str
    notify: bool = False


@dataclass(frozen=True)
class UpdateMapping:
    """Write these values into the existing mapping (new etags over unchanged content)."""

    item_href: str
    remote_id: str
    remote_etag: str
    local_etag: str
    content_hash: str
    notify: bool = False


@dataclass(frozen=True)
class LinkMapping:
    """Save a new mapping (owner ``local``) for an event we pushed whose mapping was never saved.
    ``local_etag`` is empty when the contents differ, so a crash before the PushUpdate that follows
    still leaves the item marked as changed here."""

    item_href: str
    remote_id: str
    remote_etag: str
    local_etag: str
    content_hash: str
    notify: bool = False


@dataclass(frozen=True)
class Conflict:
    """Both sides changed since the last sync; the owner's version wins (the next action). Log it."""

    item_href: str
    remote_id: str
    winner: Owner
    notify: bool = False


Action: TypeAlias = (MirrorCreate | MirrorUpdate | MirrorDelete | ApplyRemoteToOwned | CancelOwned | PushCreate
                     | PushUpdate | PushDelete | ForgetMapping | UpdateMapping | LinkMapping | Conflict)
Deletion: TypeAlias = MirrorDelete | CancelOwned | PushDelete


@dataclass(frozen=True)
class Plan:
    """The actions of one run, in order, and the deletions held back (fail closed)."""

    actions: tuple[Action, ...] = ()
    held: bool = False
    held_deletions: tuple[Deletion, ...] = ()
    delete_limit: float = field(default=0.0, compare=False)  # inbound
    push_delete_limit: float = field(default=0.0, compare=False)  # outbound

    @property
    def is_empty(self) -> bool:
        return not self.actions


# -- planning -----------------------------------------------------------------------------

def plan(remote: RemoteSide, local_items: Iterable[LocalItem], mappings: Iterable[MappingRow], *,
         connection_id: int | str, mirror_href: Callable[[str], str], direction: Direction = "both",
         baseline: bool = False, max_delete_share: float = 0.5, min_delete_count: int = 10,
         confirm_deletions: bool = False) -> Plan:
    """The actions that bring this connection's two sides in step (see the module docstring).

    ``local_items``: this connection's mirrored items and, when pushing, the bookings and client
    items, *not* filtered by the window (an owned mapped item left out looks deleted here);
    items of other connections are ignored. ``mirror_href``: the connection-scoped href of a remote
    id (:func:`bridge.sync.mirror.href_for`).
    """
    rows = sorted(mappings, key=lambda row: (row.remote_id, row.item_href))
    planner = _Planner(remote, local_items, rows, connection_id, mirror_href, direction, baseline)
    for row in rows:
        planner.mapped(row)
    planner.unmapped_remote()
    planner.unmapped_local()
    actions = planner.actions
    limit = max(float(min_delete_count), max_delete_share * len(rows))
    pushed = sum(1 for row in rows if row.owner == "local")
    push_limit = max(float(min_delete_count), max_delete_share * pushed)
    inbound = [action for action in actions if isinstance(action, MirrorDelete | CancelOwned)]
    outbound = [action for action in actions if isinstance(action, PushDelete) and action.item_href is not None]
    suspicious_empty = remote.complete and not remote.changed
    held: set[int] = set()  # ids of the held actions
    if not confirm_deletions:
        if inbound and (suspicious_empty or len(inbound) > limit):
            held.update(map(id, inbound))
        if len(outbound) > push_limit:
            held.update(map(id, outbound))
    if not held:
        return Plan(tuple(actions), False, (), limit, push_limit)
    deletions = tuple(action for action in actions if isinstance(action, Deletion) and id(action) in held)
    waiting = {action.item_href for action in deletions}  # a held deletion's Conflict entry waits with it
    kept = tuple(action for action in actions
                 if id(action) not in held and not (isinstance(action, Conflict) and action.item_href in waiting))
    return Plan(kept, True, deletions, limit, push_limit)


def _overlaps(start: datetime, end: datetime | None, window: Window) -> bool:
    if start >= window.end:
        return False
    return end is None or end > window.start or start >= window.start


def _changed(etag: str, content_hash: str, known_etag: str, known_hash: str) -> bool:
    return etag != known_etag and content_hash != known_hash


class _Planner:
    """The state of one planning pass: indexes of the inputs and the actions so far."""

    def __init__(self, remote: RemoteSide, local_items: Iterable[LocalItem], rows: list[MappingRow],
                 connection_id: int | str, mirror_href: Callable[[str], str], direction: Direction,
                 baseline: bool) -> None:
        self.remote = remote
        self.origin = connection_origin(connection_id)
        self.connection_id = connection_id
        self.key_prefix = push_key_prefix(connection_id)
        self.mirror_href = mirror_href
        self.baseline = baseline
        self.notify = not baseline
        self.pushing = direction in ("both", "outbound")
        self.mirroring = direction in ("both", "inbound")
        self.outbound = direction == "outbound"
        self.local = {item.href: item for item in local_items
                      if item.origin in OWNED_ORIGINS or item.origin == self.origin}
        self.mapped_hrefs = {row.item_href for row in rows}
        self.mapped_ids = {row.remote_id for row in rows}
        self.claimed: set[str] = set()  # hrefs an unmapped remote event was planned into
        self.actions: list[Action] = []

    def _item_of(self, row: MappingRow) -> LocalItem | None:
        item = self.local.get(row.item_href)
        if item is None:
            return None
        owner = "remote" if item.origin == self.origin else "local"
        return item if owner == row.owner else None

    def _seen(self, href: str) -> LocalVersion:
        """The version of whatever item is at ``href`` (of any origin given), as the applier will find it."""
        return version_of(self.local.get(href))

    def _in_window(self, start: datetime, end: datetime | None) -> bool:
        return _overlaps(start, end, self.remote.window)

    def _remote_state(self, row: MappingRow, item: LocalItem | None) -> tuple[_State, RemoteVersion | None]:
        """Listed (with its version), gone, or unchanged (not listed, or out of the window)."""
        version = self.remote.changed.get(row.remote_id)
        if version is not None:
            return "listed", version
        if row.remote_id in self.remote.deleted:
            return "gone", None
        if self.remote.complete and (item is None or self._in_window(item.start, item.end)):
            return "gone", None
        return "unchanged", None

    # -- mapped -----------------------------------------------------------------------------

    def mapped(self, row: MappingRow) -> None:
        item = self._item_of(row)
        state, listed = self._remote_state(row, item)
        if row.owner == "remote":
            self._mirrored(row, item, state, listed)
        else:
            self._owned(row, item, state, listed)

    def _mirrored(self, row: MappingRow, item: LocalItem | None, state: _State,
                  listed: RemoteVersion | None) -> None:
        if not self.mirroring:
            return
        href, rid = row.item_href, row.remote_id
        if state == "gone":
            if item is None:
                self.actions.append(ForgetMapping(href, rid))
            else:
                self.actions.append(MirrorDelete(rid, href, self.notify, self._seen(href)))
            return
        if listed is None:
            return
        if _changed(listed.etag, listed.content_hash, row.remote_etag, row.content_hash):
            if item is not None and row.local_etag and item.etag != row.local_etag:
                self.actions.append(Conflict(href, rid, "remote"))
            self.actions.append(MirrorUpdate(rid, href, self.notify, self._seen(href)))
        elif self.baseline:
            self.actions.append(MirrorUpdate(rid, href, False, self._seen(href)))
        elif listed.etag != row.remote_etag:
            self.actions.append(UpdateMapping(href, rid, listed.etag, row.local_etag, row.content_hash))

    def _owned(self, row: MappingRow, item: LocalItem | None, state: _State,
               listed: RemoteVersion | None) -> None:
        href, rid = row.item_href, row.remote_id
        remote_changed = listed is not None and _changed(listed.etag, listed.content_hash,
                                                         row.remote_etag, row.content_hash)
        remote_etag = listed.etag if listed is not None else row.remote_etag
        if item is None:  # deleted here (or, inbound, not given)
            if state == "gone":
                self.actions.append(ForgetMapping(href, rid))
            elif self.pushing:
                if remote_changed:
                    self.actions.append(Conflict(href, rid, "local"))
                self.actions.append(PushDelete(rid, remote_etag, href))
            return
        local_changed = _changed(item.etag, item.content_hash, row.local_etag, row.content_hash)
        if state == "gone":
            if local_changed or self.outbound:
                if local_changed:
                    self.actions.append(Conflict(href, rid, "local"))
                self.actions.append(ForgetMapping(href, rid))
                if self.pushing and self._in_window(item.start, item.end):
                    self.actions.append(PushCreate(href, push_key(self.connection_id, href)))
            else:
                self.actions.append(CancelOwned(rid, href, self.notify, self._seen(href)))
            return
        if local_changed and remote_changed and listed is not None:
            if item.content_hash == listed.content_hash:
                self.actions.append(UpdateMapping(href, rid, listed.etag, item.etag, item.content_hash))
                return
            self.actions.append(Conflict(href, rid, "local"))
            if self.pushing:
                self.actions.append(PushUpdate(href, rid, listed.etag))
            else:  # the remote version is acknowledged; the change made here waits for pushing
                self.actions.append(UpdateMapping(href, rid, listed.etag, row.local_etag, listed.content_hash))
        elif local_changed:
            if self.pushing:
                self.actions.append(PushUpdate(href, rid, remote_etag))
        elif remote_changed:
            if self.outbound:
                self.actions.append(PushUpdate(href, rid, remote_etag))
            else:
                self.actions.append(ApplyRemoteToOwned(rid, href, self.notify, self._seen(href)))
        elif remote_etag != row.remote_etag or item.etag != row.local_etag:
            self.actions.append(UpdateMapping(href, rid, remote_etag, item.etag, row.content_hash))

    # -- unmapped ---------------------------------------------------------------------------

    def unmapped_remote(self) -> None:
        by_key = {push_key(self.connection_id, href): item for href, item in self.local.items()
                  if item.origin in OWNED_ORIGINS and href not in self.mapped_hrefs}
        for rid in sorted(self.remote.changed):
            if rid in self.mapped_ids:
                continue
            version = self.remote.changed[rid]
            if version.key is not None and version.key.startswith(self.key_prefix):
                self._ours(rid, version, by_key.pop(version.key, None))
                continue
            if not self.mirroring or not self._in_window(version.start, version.end):
                continue
            href = self.mirror_href(rid)
            if href in self.mapped_hrefs or href in self.claimed:
                continue  # the href is another mapping's: never write over it
            existing = self.local.get(href)
            self.claimed.add(href)
            found_again = existing is not None and existing.origin == self.origin
            self.actions.append(MirrorCreate(rid, href, self.notify and not found_again, self._seen(href)))

    def _ours(self, rid: str, version: RemoteVersion, item: LocalItem | None) -> None:
        """An unmapped event this connection pushed: link it to its item, or delete the orphan."""
        if item is None:
            if self.pushing:
                self.actions.append(PushDelete(rid, version.etag, None))
            return
        self.claimed.add(item.href)
        same = item.content_hash == version.content_hash
        self.actions.append(LinkMapping(item.href, rid, version.etag, item.etag if same else "",
                                        version.content_hash))
        if not same and self.pushing:
            self.actions.append(PushUpdate(item.href, rid, version.etag))

    def unmapped_local(self) -> None:
        for href in sorted(self.local):
            if href in self.mapped_hrefs or href in self.claimed:
                continue
            item = self.local[href]
            if not self._in_window(item.start, item.end):
                continue
            if item.origin == self.origin:
                if self.mirroring and self.remote.complete:
                    self.actions.append(MirrorDelete(None, href, False, self._seen(href)))
            elif self.pushing:
                self.actions.append(PushCreate(href, push_key(self.connection_id, href)))
