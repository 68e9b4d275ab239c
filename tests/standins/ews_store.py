"""What the EWS stand-in holds: per-mailbox folders and calendar items, the sync sequence, and how items look
on the wire (server-owned fields, recurring series with their occurrences and exceptions). Operations
(``ews_operations``) read and change it under the stand-in's lock."""

from __future__ import annotations

import base64
import binascii
import copy
import secrets
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from lxml import etree

from tests.standins import ews_recurrence
from tests.standins.ews_items import Shape, StoredItem, client_fields, normalise, render, with_defaults, zone_of
from tests.standins.ews_xml import ResponseError, child, ews_time, find_t, local, t

ITEM = "AAMkAD"
OCCURRENCE = "AAMkOC"
_HORIZON = datetime(2100, 1, 1, tzinfo=UTC)  # LastOccurrence of a bounded series is searched up to here


@dataclass
class Folder:
    """A mail folder of one mailbox: its root, its top of information store, or a calendar."""

    id: str
    owner: str  # the mailbox's e-mail
    parent_id: str | None
    tag: str  # Folder or CalendarFolder
    name: str
    folder_class: str | None
    distinguished: str | None = None
    change_key: str = field(default_factory=lambda: secrets.token_urlsafe(6))


@dataclass
class Target:
    """What an item id in a request names: a stored item, or occurrence ``index`` of the stored master."""

    item: StoredItem
    index: int | None = None


def zone(name: str | None) -> tzinfo:
    """The zone of a Windows time zone id (``W. Europe Standard Time``) or an IANA name; UTC if unknown."""
    if not name or name in ("UTC", "Etc/UTC", "GMT"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(WINDOWS_TO_OLSON.get(name, name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


class Store:
    """Folders and items of every mailbox, keyed by id; ``seq`` numbers every write for SyncFolderItems."""

    def __init__(self) -> None:
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, StoredItem] = {}
        self.seq = 0
        self.generation = secrets.token_hex(4)

    def distinguished(self, owner: str, name: str) -> Folder:
        """A mailbox's folder by its distinguished name (``calendar``); ErrorFolderNotFound for one it lacks."""
        for folder in self.folders.values():
            if folder.owner == owner and folder.distinguished == name:
                return folder
        raise ResponseError("ErrorFolderNotFound")

    def new_folder(self, owner: str, parent: str | None, tag: str, name: str, folder_class: str | None,
                   distinguished: str | None = None) -> Folder:
        folder = Folder(id=f"AAMkAF{secrets.token_hex(10)}", owner=owner, parent_id=parent, tag=tag, name=name,
                        folder_class=folder_class, distinguished=distinguished)
        self.folders[folder.id] = folder
        return folder

    def resolve_folder(self, owner: str, elem: etree._Element) -> Folder:
        """The folder a ``FolderId`` or ``DistinguishedFolderId`` names, in the caller's mailbox."""
        if local(elem) == "DistinguishedFolderId":
            box = find_t(elem, "Mailbox")
            address = find_t(box, "EmailAddress") if box is not None else None
            if address is not None and (address.text or "").lower() != owner.lower():
                raise ResponseError("ErrorAccessDenied")
            return self.distinguished(owner, elem.get("Id") or "")
        folder = self.folders.get(elem.get("Id") or "")
        if folder is None:
            raise ResponseError("ErrorFolderNotFound")
        if folder.owner != owner:
            raise ResponseError("ErrorAccessDenied")
        return folder

    def folder_elem(self, folder: Folder) -> etree._Element:
        """A ``t:Folder`` / ``t:CalendarFolder`` with every field (the shape asked for is not applied)."""
        out = t(folder.tag)
        child(out, t("FolderId", Id=folder.id, ChangeKey=folder.change_key))
        if folder.parent_id:
            parent = self.folders[folder.parent_id]
            child(out, t("ParentFolderId", Id=parent.id, ChangeKey=parent.change_key))
        if folder.folder_class:
            child(out, t("FolderClass", folder.folder_class))
        child(out, t("DisplayName", folder.name))
        child(out, t("TotalCount", str(len(self.live(folder.id)))))
        children = [f for f in self.folders.values() if f.parent_id == folder.id]
        child(out, t("ChildFolderCount", str(len(children))))
        if folder.distinguished:
            child(out, t("DistinguishedFolderId", folder.distinguished))
        return out

    def descendants(self, parent_id: str, deep: bool) -> list[Folder]:
        found = []
        for folder in self.folders.values():
            if folder.parent_id == parent_id:
                found.append(folder)
                if deep:
                    found.extend(self.descendants(folder.id, deep))
        return found

    def live(self, folder_id: str) -> list[StoredItem]:
        """The singles and recurring masters in a folder, deleted ones and exceptions left out."""
        return [item for item in self.items.values()
                if item.folder_id == folder_id and item.deleted_seq is None and item.master_id is None]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def touch(self, item: StoredItem, names: set[str]) -> None:
        """A write: new ChangeKey and modification time, a sync change on the item (or its master)."""
        item.change_key = secrets.token_urlsafe(9)
        item.modified = datetime.now(UTC)
        item.history.append((item.change_key, frozenset(names)))
        item.changed_seq = self.next_seq()
        if item.master_id is not None:
            self.touch(self.items[item.master_id], {"ModifiedOccurrences"})

    def find_target(self, owner: str | None, elem: etree._Element) -> Target:
        """The item an ``ItemId``, ``OccurrenceItemId`` or ``RecurringMasterItemId`` names, in ``owner``'s
        mailbox (None: in any, for the tests' knobs)."""
        kind = local(elem)
        if kind == "OccurrenceItemId":
            master = self.stored(owner, elem.get("RecurringMasterId") or "")
            index = int(elem.get("InstanceIndex") or "0")
            return self.occurrence_target(master, index)
        if kind == "RecurringMasterItemId":
            target = self.find_target(owner, t("ItemId", Id=elem.get("OccurrenceId") or ""))
            master = target.item if target.item.master_id is None else self.items[target.item.master_id]
            if master.recurrence is None:
                raise ResponseError("ErrorItemNotFound")
            return Target(master)
        if kind != "ItemId":
            raise ResponseError("ErrorInvalidIdMalformed")
        value = elem.get("Id") or ""
        if value in self.items:  # a single, a master, or an exception (which keeps its occurrence's id)
            return Target(self.stored(owner, value))
        if value.startswith(OCCURRENCE):
            try:
                master_id, index = ITEM + value[len(OCCURRENCE):-5], int(value[-5:])
            except ValueError:
                raise ResponseError("ErrorInvalidIdMalformed") from None
            return self.occurrence_target(self.stored(owner, master_id), index)
        return Target(self.stored(owner, value))

    def stored(self, owner: str | None, item_id: str) -> StoredItem:
        """A stored item that is not deleted, in ``owner``'s mailbox."""
        if not item_id.startswith((ITEM, OCCURRENCE)):
            raise ResponseError("ErrorInvalidIdMalformed")
        item = self.items.get(item_id)
        if item is None or item.deleted_seq is not None:
            raise ResponseError("ErrorItemNotFound")
        if owner is not None and self.folders[item.folder_id].owner != owner:
            raise ResponseError("ErrorAccessDenied")
        return item

    def occurrence_target(self, master: StoredItem, index: int) -> Target:
        """Occurrence ``index`` of a series: its exception if it was modified, refused if it was deleted."""
        if master.recurrence is None or index < 1:
            raise ResponseError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")
        original = self.nth_start(master, index)
        if original is None:
            raise ResponseError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")
        if original in master.deleted_starts:
            raise ResponseError("ErrorCalendarOccurrenceIsDeletedFromRecurrence")
        exception = self.exception_at(master, original)
        return Target(exception) if exception is not None else Target(master, index)

    def nth_start(self, master: StoredItem, index: int) -> datetime | None:
        """The original start of occurrence ``index`` (from 1) of a series, None past its end."""
        for number, begins in self.expand(master, _HORIZON):
            if number == index:
                return begins
        return None

    def expand(self, master: StoredItem, until: datetime) -> Iterator[tuple[int, datetime]]:
        assert master.recurrence is not None
        return ews_recurrence.occurrences(master.recurrence, master.start, zone(zone_of(master.fields)), until)

    def exceptions(self, master: StoredItem) -> list[StoredItem]:
        found = [item for item in self.items.values() if item.master_id == master.id and item.deleted_seq is None]
        return sorted(found, key=lambda item: item.original_start or item.start)

    def exception_at(self, master: StoredItem, original: datetime) -> StoredItem | None:
        return next((item for item in self.exceptions(master) if item.original_start == original), None)

    def computed(self, item: StoredItem) -> dict[str, etree._Element]:
        """Every field of a stored item, the server-owned ones included."""
        folder = self.folders[item.folder_id]
        parts = dict(item.fields)
        parts["ItemId"] = t("ItemId", Id=item.id, ChangeKey=item.change_key)
        parts["ParentFolderId"] = t("ParentFolderId", Id=folder.id, ChangeKey=folder.change_key)
        parts["ItemClass"] = t("ItemClass", "IPM.Appointment")
        parts["DateTimeCreated"] = t("DateTimeCreated", ews_time(item.created))
        parts["LastModifiedTime"] = t("LastModifiedTime", ews_time(item.modified))
        parts.setdefault("IsCancelled", t("IsCancelled", "false"))
        parts["IsMeeting"] = t("IsMeeting", "false")
        parts["MyResponseType"] = t("MyResponseType", "Organizer")
        organizer = t("Organizer")
        box = child(organizer, t("Mailbox"))
        child(box, t("Name", folder.owner.split("@")[0]))
        child(box, t("EmailAddress", folder.owner))
        child(box, t("RoutingType", "SMTP"))
        parts["Organizer"] = organizer
        parts["Duration"] = t("Duration", duration(item.end - item.start))
        if item.master_id is not None:
            master = self.items[item.master_id]
            parts["UID"] = copy.deepcopy(master.fields["UID"])
            parts["CalendarItemType"] = t("CalendarItemType", "Exception")
            parts["IsRecurring"] = t("IsRecurring", "true")
            assert item.original_start is not None
            parts["OriginalStart"] = t("OriginalStart", ews_time(item.original_start))
            parts["RecurrenceId"] = t("RecurrenceId", ews_time(item.original_start))
        elif item.recurrence is not None:
            parts["CalendarItemType"] = t("CalendarItemType", "RecurringMaster")
            parts["IsRecurring"] = t("IsRecurring", "true")
            parts.update(self._series_fields(item))
        else:
            parts["CalendarItemType"] = t("CalendarItemType", "Single")
            parts["IsRecurring"] = t("IsRecurring", "false")
        return parts

    def _series_fields(self, master: StoredItem) -> dict[str, etree._Element]:
        """FirstOccurrence, LastOccurrence, ModifiedOccurrences and DeletedOccurrences of a master."""
        parts: dict[str, etree._Element] = {}
        assert master.recurrence is not None
        length = master.end - master.start
        first = next(iter(self.expand(master, _HORIZON)), None)
        if first is not None:
            parts["FirstOccurrence"] = self._occurrence_ref("FirstOccurrence", master, *first, length)
        if ews_recurrence.is_bounded(master.recurrence):
            last = None
            for last in self.expand(master, _HORIZON):  # noqa: B007 - the loop finds the last one
                pass
            if last is not None:
                parts["LastOccurrence"] = self._occurrence_ref("LastOccurrence", master, *last, length)
        exceptions = self.exceptions(master)
        if exceptions:
            modified = t("ModifiedOccurrences")
            for item in exceptions:
                entry = child(modified, t("Occurrence"))
                child(entry, t("ItemId", Id=item.id, ChangeKey=item.change_key))
                child(entry, t("Start", ews_time(item.start)))
                child(entry, t("End", ews_time(item.end)))
                child(entry, t("OriginalStart", ews_time(item.original_start or item.start)))
            parts["ModifiedOccurrences"] = modified
        if master.deleted_starts:
            deleted = t("DeletedOccurrences")
            for begins in sorted(master.deleted_starts):
                child(child(deleted, t("DeletedOccurrence")), t("Start", ews_time(begins)))
            parts["DeletedOccurrences"] = deleted
        return parts

    def _occurrence_ref(self, tag: str, master: StoredItem, index: int, begins: datetime,
                        length: timedelta) -> etree._Element:
        exception = self.exception_at(master, begins)
        out = t(tag)
        if exception is not None:
            child(out, t("ItemId", Id=exception.id, ChangeKey=exception.change_key))
            child(out, t("Start", ews_time(exception.start)))
            child(out, t("End", ews_time(exception.end)))
        else:
            child(out, t("ItemId", Id=occurrence_id(master, index), ChangeKey=master.change_key))
            child(out, t("Start", ews_time(begins)))
            child(out, t("End", ews_time(begins + length)))
        child(out, t("OriginalStart", ews_time(begins)))
        return out

    def occurrence_parts(self, master: StoredItem, index: int, begins: datetime) -> dict[str, etree._Element]:
        """An unmodified occurrence, as GetItem and a CalendarView show it."""
        parts = self.computed(master)
        for name in ("Recurrence", "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences"):
            parts.pop(name, None)
        length = master.end - master.start
        parts["ItemId"] = t("ItemId", Id=occurrence_id(master, index), ChangeKey=master.change_key)
        parts["Start"] = t("Start", ews_time(begins))
        parts["End"] = t("End", ews_time(begins + length))
        parts["OriginalStart"] = t("OriginalStart", ews_time(begins))
        parts["RecurrenceId"] = t("RecurrenceId", ews_time(begins))
        parts["CalendarItemType"] = t("CalendarItemType", "Occurrence")
        return parts

    def target_elem(self, target: Target, shape: Shape) -> etree._Element:
        """The ``t:CalendarItem`` of an item or occurrence, in the shape asked for."""
        item = target.item
        if target.index is None:
            parts = self.computed(item)
        else:
            begins = self.nth_start(item, target.index)
            assert begins is not None
            parts = self.occurrence_parts(item, target.index, begins)
        return render("CalendarItem", parts, list(item.extended.values()), shape)

    def new_item(self, folder: Folder, elem: etree._Element) -> StoredItem:
        """A CreateItem's ``t:CalendarItem`` stored, with the defaults and the UID Exchange adds."""
        sent, extended = client_fields(elem)
        tz = zone(zone_of(sent))
        fields = {name: normalise(value, tz) for name, value in sent.items()}
        with_defaults(fields)
        if "UID" not in fields:
            fields["UID"] = t("UID", "040000008200E00074C5B7101A82E008" + secrets.token_hex(24).upper())
        now, seq = datetime.now(UTC), self.next_seq()
        item = StoredItem(id=ITEM + secrets.token_hex(12), folder_id=folder.id, change_key=secrets.token_urlsafe(9),
                          fields=fields, extended=extended, created=now, modified=now, created_seq=seq,
                          changed_seq=seq)
        item.history.append((item.change_key, frozenset(fields)))
        check_item(item)
        self.align_series(item)
        self.items[item.id] = item
        return item

    def align_series(self, item: StoredItem) -> None:
        """A series starts at its first occurrence: Exchange moves a master's Start and End there."""
        if item.recurrence is None or item.master_id is not None:
            return
        first = next(iter(self.expand(item, _HORIZON)), None)
        if first is None:
            raise ResponseError("ErrorRecurrenceHasNoOccurrence")
        length = item.end - item.start
        item.fields["Start"] = t("Start", ews_time(first[1]))
        item.fields["End"] = t("End", ews_time(first[1] + length))

    def make_exception(self, master: StoredItem, index: int) -> StoredItem:
        """Occurrence ``index`` of a series turned into an exception (a copy of the master at its time)."""
        begins = self.nth_start(master, index)
        assert begins is not None
        fields = {name: copy.deepcopy(value) for name, value in master.fields.items() if name != "Recurrence"}
        length = master.end - master.start
        fields["Start"] = t("Start", ews_time(begins))
        fields["End"] = t("End", ews_time(begins + length))
        now, seq = datetime.now(UTC), self.next_seq()
        exception = StoredItem(id=occurrence_id(master, index), folder_id=master.folder_id,
                               change_key=secrets.token_urlsafe(9), fields=fields,
                               extended={key: copy.deepcopy(value) for key, value in master.extended.items()},
                               created=now, modified=now, created_seq=seq, changed_seq=seq, master_id=master.id,
                               original_start=begins)
        exception.history.append((exception.change_key, frozenset(fields)))
        self.items[exception.id] = exception
        return exception

    def remove(self, target: Target) -> None:
        """DeleteItem: a single or a series (with its exceptions), or one occurrence of a series."""
        item = target.item
        if target.index is not None:  # an occurrence: its master remembers it was deleted
            begins = self.nth_start(item, target.index)
            assert begins is not None
            item.deleted_starts.append(begins)
            self.touch(item, {"DeletedOccurrences"})
        elif item.master_id is not None:  # an exception: deleted as the occurrence it replaced
            master = self.items[item.master_id]
            item.deleted_seq = self.next_seq()
            assert item.original_start is not None
            master.deleted_starts.append(item.original_start)
            self.touch(master, {"DeletedOccurrences", "ModifiedOccurrences"})
        else:
            for exception in self.exceptions(item) if item.recurrence is not None else []:
                exception.deleted_seq = self.next_seq()
            item.deleted_seq = item.changed_seq = self.next_seq()

    def sync_state(self, folder: Folder, seq: int) -> str:
        """An opaque SyncState naming the folder and the last change it has seen (base64 beginning like
        Exchange's gzipped ones)."""
        raw = f"{self.generation}:{folder.id}:{seq}".encode()
        return base64.b64encode(b"H4sIAAAA" + raw).decode()

    def read_sync_state(self, folder: Folder, value: str | None) -> int:
        """The change number a SyncState of this folder stands for; one from before
        ``invalidate_sync_states``, of another folder or made up is ErrorInvalidSyncStateData."""
        if not value:
            return 0
        try:
            raw = base64.b64decode(value, validate=True)
            generation, folder_id, seq = raw.removeprefix(b"H4sIAAAA").decode().split(":")
            if generation != self.generation or folder_id != folder.id:
                raise ValueError(value)
            return int(seq)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ResponseError("ErrorInvalidSyncStateData") from None


def occurrence_id(master: StoredItem, index: int) -> str:
    """The id of occurrence ``index`` of a series, kept by the exception it may become."""
    return f"{OCCURRENCE}{master.id[len(ITEM):]}{index:05d}"


def duration(length: timedelta) -> str:
    """An xs:duration as Exchange writes ``Duration``: PT1H0M0S."""
    seconds = int(length.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"P{days}DT{hours}H{minutes}M{seconds}S" if days else f"PT{hours}H{minutes}M{seconds}S"


def check_item(item: StoredItem) -> None:
    """What Exchange refuses on a create or update of a calendar item."""
    if "Start" not in item.fields or "End" not in item.fields:
        raise ResponseError("ErrorInvalidPropertySet", "a calendar item needs Start and End")
    try:
        begins, ends = item.start, item.end
    except ValueError:
        raise ResponseError("ErrorInvalidPropertySet", "Start and End must be xs:dateTime") from None
    if ends < begins:
        raise ResponseError("ErrorCalendarEndDateIsEarlierThanStartDate")
    if item.recurrence is not None:
        try:
            ews_recurrence.check(item.recurrence, begins, zone(zone_of(item.fields)))
        except (ews_recurrence.BadRecurrence, ValueError) as bad:
            raise ResponseError("ErrorCalendarInvalidRecurrence", str(bad)) from None


