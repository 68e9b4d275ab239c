"""The EWS operations the stand-in answers, one method each, over a :class:`~tests.standins.ews_store.Store`:
each takes the caller's mailbox (its e-mail) and the request element and returns the ``m:{Operation}Response``
element, with one response message per folder, item or change asked for."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lxml import etree

from tests.standins.ews_items import (
    Shape,
    StoredItem,
    client_fields,
    extended_key,
    field_name,
    matches,
    normalise,
    render,
    zone_of,
)
from tests.standins.ews_store import Folder, Store, Target, check_item, zone
from tests.standins.ews_xml import (
    Fault,
    ResponseError,
    child,
    failure,
    find_m,
    find_t,
    kids,
    local,
    m,
    parse_time,
    response,
    success,
    t,
)

_CONFLICT_MODES = ("NeverOverwrite", "AutoResolve", "AlwaysOverwrite")


class Operations:
    """The SOAP operations by name (:attr:`handlers`), each ``(owner e-mail, request element) -> response``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.handlers: dict[str, Callable[[str, etree._Element], etree._Element]] = {
            "ConvertId": self.convert_id,
            "GetFolder": self.get_folder,
            "FindFolder": self.find_folder,
            "SyncFolderItems": self.sync_folder_items,
            "FindItem": self.find_item,
            "GetItem": self.get_item,
            "CreateItem": self.create_item,
            "UpdateItem": self.update_item,
            "DeleteItem": self.delete_item,
        }

    def convert_id(self, owner: str, request: etree._Element) -> etree._Element:
        """Only what version detection needs: each id is refused as malformed, the header carries the version."""
        sources = find_m(request, "SourceIds")
        messages = [failure("ConvertId", ResponseError("ErrorInvalidIdMalformed"))
                    for elem in (sources if sources is not None else []) if local(elem)]
        return response("ConvertId", messages)

    def get_folder(self, owner: str, request: etree._Element) -> etree._Element:
        messages = []
        for elem in kids(find_m(request, "FolderIds")):
            try:
                folder = self.store.resolve_folder(owner, elem)
            except ResponseError as error:
                messages.append(failure("GetFolder", error))
                continue
            message = success("GetFolder")
            child(message, m("Folders")).append(self.store.folder_elem(folder))
            messages.append(message)
        return response("GetFolder", messages)

    def find_folder(self, owner: str, request: etree._Element) -> etree._Element:
        deep = request.get("Traversal") == "Deep"
        view = find_m(request, "IndexedPageFolderView")
        messages = []
        for elem in kids(find_m(request, "ParentFolderIds")):
            try:
                parent = self.store.resolve_folder(owner, elem)
            except ResponseError as error:
                messages.append(failure("FindFolder", error))
                continue
            found = self.store.descendants(parent.id, deep)
            page, offset, last = _page(found, view)
            message = success("FindFolder")
            root = child(message, m("RootFolder", IndexedPagingOffset=str(offset), TotalItemsInView=str(len(found)),
                                    IncludesLastItemInRange=str(last).lower()))
            folders = child(root, t("Folders"))
            for folder in page:
                folders.append(self.store.folder_elem(folder))
            messages.append(message)
        return response("FindFolder", messages)

    def get_item(self, owner: str, request: etree._Element) -> etree._Element:
        shape = Shape.of(find_m(request, "ItemShape"))
        messages = []
        for elem in kids(find_m(request, "ItemIds")):
            try:
                found = self.store.target_elem(self.store.find_target(owner, elem), shape)
            except ResponseError as error:
                messages.append(failure("GetItem", error))
                continue
            message = success("GetItem")
            child(message, m("Items")).append(found)
            messages.append(message)
        return response("GetItem", messages)

    def create_item(self, owner: str, request: etree._Element) -> etree._Element:
        saved = find_m(request, "SavedItemFolderId")
        target = next((elem for elem in saved if local(elem)), None) if saved is not None else None
        messages = []
        for elem in kids(find_m(request, "Items")):
            try:
                if request.get("SendMeetingInvitations") is None:
                    raise ResponseError("ErrorSendMeetingInvitationsRequired")
                if local(elem) != "CalendarItem":
                    raise ResponseError("ErrorObjectTypeChanged", "the stand-in holds calendar items only")
                folder = (self.store.resolve_folder(owner, target) if target is not None
                          else self.store.distinguished(owner, "calendar"))
                if folder.tag != "CalendarFolder":
                    raise ResponseError("ErrorCannotCreateCalendarItemInNonCalendarFolder")
                item = self.store.new_item(folder, elem)
            except ResponseError as error:
                messages.append(failure("CreateItem", error))
                continue
            message = success("CreateItem")
            created = child(child(message, m("Items")), t("CalendarItem"))
            child(created, t("ItemId", Id=item.id, ChangeKey=item.change_key))
            messages.append(message)
        return response("CreateItem", messages)

    def update_item(self, owner: str, request: etree._Element) -> etree._Element:
        mode = request.get("ConflictResolution") or "AutoResolve"
        if mode not in _CONFLICT_MODES:
            raise Fault("ErrorSchemaValidation", f"ConflictResolution {mode!r}")
        messages = []
        for change in kids(find_m(request, "ItemChanges")):
            try:
                if request.get("SendMeetingInvitationsOrCancellations") is None:
                    raise ResponseError("ErrorSendMeetingInvitationsOrCancellationsRequired")
                item = self._apply_change(owner, change, mode)
            except ResponseError as error:
                messages.append(failure("UpdateItem", error))
                continue
            message = success("UpdateItem")
            updated = child(child(message, m("Items")), t("CalendarItem"))
            child(updated, t("ItemId", Id=item.id, ChangeKey=item.change_key))
            conflicts = child(message, m("ConflictResults"))
            child(conflicts, t("Count", "0"))
            messages.append(message)
        return response("UpdateItem", messages)

    def _apply_change(self, owner: str, change: etree._Element, mode: str) -> StoredItem:
        """One ``ItemChange``: the ChangeKey checked, an occurrence turned into an exception, the fields set."""
        id_elem = next((elem for elem in kids(change) if local(elem).endswith("ItemId")), None)
        updates = find_t(change, "Updates")
        if id_elem is None or updates is None:
            raise ResponseError("ErrorInvalidIdMalformed")
        target = self.store.find_target(owner, id_elem)
        sets, deletes, props = _updates(updates, target.item)
        changed = set(sets) | deletes | {f"ext:{key}" for key in props}
        _check_change_key(target.item, id_elem.get("ChangeKey"), mode, changed)
        if "Recurrence" in sets and (target.index is not None or target.item.master_id is not None):
            raise ResponseError("ErrorInvalidPropertyForOperation", "an occurrence has no recurrence of its own")
        stored = target.item if target.index is None else self.store.make_exception(target.item, target.index)
        before = (dict(stored.fields), dict(stored.extended))
        tz = zone(zone_of({**stored.fields, **sets}))
        for name, value in sets.items():
            stored.fields[name] = normalise(value, tz)
        for name in deletes:
            stored.fields.pop(name, None)
        for key, prop in props.items():
            if prop is None:
                stored.extended.pop(key, None)
            else:
                stored.extended[key] = prop
        try:
            check_item(stored)
            if {"Recurrence", "Start", "End"} & set(sets):
                self.store.align_series(stored)
        except ResponseError:
            stored.fields, stored.extended = before
            if target.index is not None:  # the exception made for this change goes again
                del self.store.items[stored.id]
            raise
        if stored.master_id is None and {"Recurrence", "Start", "End"} & (set(sets) | deletes):
            # A series given a new pattern or time loses its exceptions and deletions, as in Outlook.
            for exception in self.store.exceptions(stored):
                exception.deleted_seq = self.store.next_seq()
            stored.deleted_starts.clear()
        self.store.touch(stored, changed)
        return stored

    def delete_item(self, owner: str, request: etree._Element) -> etree._Element:
        messages = []
        for elem in kids(find_m(request, "ItemIds")):
            try:
                if request.get("SendMeetingCancellations") is None:
                    raise ResponseError("ErrorSendMeetingCancellationsRequired")
                self.store.remove(self.store.find_target(owner, elem))
            except ResponseError as error:
                messages.append(failure("DeleteItem", error))
                continue
            messages.append(success("DeleteItem"))
        return response("DeleteItem", messages)

    def sync_folder_items(self, owner: str, request: etree._Element) -> etree._Element:
        shape = Shape.of(find_m(request, "ItemShape"))
        holder = find_m(request, "SyncFolderId")
        state = find_m(request, "SyncState")
        most = find_m(request, "MaxChangesReturned")
        limit = int(most.text or "512") if most is not None else 512
        ignore = {elem.get("Id") for elem in kids(find_m(request, "Ignore"))}
        try:
            folder_elem = next((elem for elem in holder if local(elem)), None) if holder is not None else None
            if folder_elem is None:
                raise ResponseError("ErrorFolderNotFound")
            folder = self.store.resolve_folder(owner, folder_elem)
            if not 1 <= limit <= 512:
                raise ResponseError("ErrorInvalidArgument", "MaxChangesReturned must be between 1 and 512")
            since = self.store.read_sync_state(folder, state.text if state is not None else None)
        except ResponseError as error:
            message = failure("SyncFolderItems", error)
            child(message, m("SyncState"))
            child(message, m("IncludesLastItemInRange", "true"))
            return response("SyncFolderItems", [message])
        changed = sorted((item for item in self.store.items.values()
                          if item.folder_id == folder.id and item.master_id is None and item.changed_seq > since
                          and not (item.created_seq > since and item.deleted_seq is not None)),
                         key=lambda item: item.changed_seq)
        page, rest = changed[:limit], changed[limit:]
        message = success("SyncFolderItems")
        child(message, m("SyncState", self.store.sync_state(folder, page[-1].changed_seq if rest else self.store.seq)))
        child(message, m("IncludesLastItemInRange", "false" if rest else "true"))
        changes = child(message, m("Changes"))
        for item in page:
            if item.id in ignore:
                continue
            if item.deleted_seq is not None:
                child(child(changes, t("Delete")), t("ItemId", Id=item.id, ChangeKey=item.change_key))
            else:
                kind = "Create" if item.created_seq > since else "Update"
                child(changes, t(kind)).append(self.store.target_elem(Target(item), shape))
        return response("SyncFolderItems", [message])

    def find_item(self, owner: str, request: etree._Element) -> etree._Element:
        shape = Shape.of(find_m(request, "ItemShape"))
        restriction = find_m(request, "Restriction")
        condition = next((elem for elem in restriction if local(elem)), None) if restriction is not None else None
        calendar_view = find_m(request, "CalendarView")
        paging = find_m(request, "IndexedPageItemView")
        order = find_m(request, "SortOrder")
        messages = []
        for elem in kids(find_m(request, "ParentFolderIds")):
            try:
                folder = self.store.resolve_folder(owner, elem)
                if calendar_view is not None:
                    rows = self._calendar_view(folder, calendar_view)
                else:
                    rows = [(self.store.computed(item), item) for item in self.store.live(folder.id)]
                if condition is not None:
                    rows = [(parts, item) for parts, item in rows
                            if matches(condition, parts, list(item.extended.values()))]
                rows = _sorted(rows, order)
            except ResponseError as error:
                messages.append(failure("FindItem", error))
                continue
            if calendar_view is not None:
                most = int(calendar_view.get("MaxEntriesReturned") or len(rows) or 1)
                page, offset, last = rows[:most], 0, len(rows) <= most
            else:
                page, offset, last = _page(rows, paging)
            message = success("FindItem")
            attrs = {"TotalItemsInView": str(len(rows)), "IncludesLastItemInRange": str(last).lower()}
            if calendar_view is None:
                attrs["IndexedPagingOffset"] = str(offset)
            found = child(child(message, m("RootFolder", **attrs)), t("Items"))
            for parts, item in page:
                found.append(render("CalendarItem", parts, list(item.extended.values()), shape))
            messages.append(message)
        return response("FindItem", messages)

    def _calendar_view(self, folder: Folder, view: etree._Element) -> list[tuple[dict[str, etree._Element],
                                                                                   StoredItem]]:
        """Singles, occurrences and exceptions overlapping the view's window (masters themselves never)."""
        try:
            window_start, window_end = parse_time(view.get("StartDate") or ""), parse_time(view.get("EndDate") or "")
        except ValueError:
            raise ResponseError("ErrorInvalidRequest", "CalendarView needs StartDate and EndDate") from None
        rows: list[tuple[dict[str, etree._Element], StoredItem]] = []

        def overlaps(begins: datetime, ends: datetime) -> bool:
            return begins < window_end and (ends > window_start or (begins == ends and begins >= window_start))

        for item in self.store.live(folder.id):
            if item.recurrence is None:
                if overlaps(item.start, item.end):
                    rows.append((self.store.computed(item), item))
                continue
            length = item.end - item.start
            replaced = {exception.original_start for exception in self.store.exceptions(item)}
            for index, begins in self.store.expand(item, window_end):
                if begins in item.deleted_starts or begins in replaced or not overlaps(begins, begins + length):
                    continue
                rows.append((self.store.occurrence_parts(item, index, begins), item))
            for exception in self.store.exceptions(item):
                if overlaps(exception.start, exception.end):
                    rows.append((self.store.computed(exception), exception))
        rows.sort(key=lambda row: row[0]["Start"].text or "")
        return rows


def _updates(updates: etree._Element, item: StoredItem) -> tuple[
        dict[str, etree._Element], set[str], dict[tuple[str, ...], etree._Element | None]]:
    """(fields to set, fields to delete, extended properties to set or delete (None)) of an ``Updates``."""
    sets: dict[str, etree._Element] = {}
    deletes: set[str] = set()
    props: dict[tuple[str, ...], etree._Element | None] = {}
    for update in kids(updates):
        kind = local(update)
        uri = next((elem for elem in kids(update) if local(elem).endswith("FieldURI")), None)
        holder = next((elem for elem in kids(update) if local(elem) == "CalendarItem"), None)
        if uri is None:
            raise ResponseError("ErrorInvalidPropertyRequest", f"{kind} names no field")
        if kind != "DeleteItemField" and holder is None:
            raise ResponseError("ErrorObjectTypeChanged", "the stand-in holds calendar items only")
        if local(uri) == "ExtendedFieldURI":
            prop = find_t(holder, "ExtendedProperty") if holder is not None else None
            if kind != "DeleteItemField" and prop is None:
                raise ResponseError("ErrorInvalidPropertySet", "no ExtendedProperty in the update")
            props[extended_key(uri)] = None if kind == "DeleteItemField" else copy.deepcopy(prop)
            continue
        name = field_name(uri)
        if kind == "DeleteItemField":
            deletes.add(name)
            continue
        assert holder is not None
        written, _ = client_fields(holder)
        if name not in written:
            raise ResponseError("ErrorInvalidPropertySet", f"no {name} in the update")
        if kind == "AppendToItemField" and name == "Body" and name in item.fields:
            written[name].text = (item.text(name) or "") + (written[name].text or "")
        sets[name] = written[name]
    return sets, deletes, props


def _check_change_key(item: StoredItem, given: str | None, mode: str, changed: set[str]) -> None:
    """Refuse a write made from a stale version as ``ConflictResolution`` says (AlwaysOverwrite never does)."""
    if mode == "AlwaysOverwrite" or given == item.change_key:
        return
    if given is None:
        raise ResponseError("ErrorChangeKeyRequiredForWriteOperations")
    since = item.changed_since(given)
    if mode == "NeverOverwrite" or since is None or since & changed:
        raise ResponseError("ErrorIrresolvableConflict")


def _page(rows: list[Any], view: etree._Element | None) -> tuple[list[Any], int, bool]:
    """(page, offset after it, whether it holds the last row) of an ``IndexedPage*View``."""
    if view is None:
        return rows, len(rows), True
    offset = int(view.get("Offset") or "0")
    if view.get("BasePoint") == "End":
        offset = max(len(rows) - offset - int(view.get("MaxEntriesReturned") or len(rows)), 0)
    most = int(view.get("MaxEntriesReturned") or len(rows) or 1)
    page = rows[offset:offset + most]
    return page, offset + len(page), offset + len(page) >= len(rows)


def _sorted(rows: list[Any], order: etree._Element | None) -> list[Any]:
    """Rows in a ``SortOrder``'s order (FieldURIs only; the stand-in sorts by their text, which ISO times suit)."""
    if order is None:
        return rows
    for field_order in reversed([elem for elem in order if local(elem) == "FieldOrder"]):
        uri = find_t(field_order, "FieldURI")
        if uri is None:
            continue
        name = field_name(uri)
        rows = sorted(rows, key=lambda row: _sort_key(row[0].get(name)),
                      reverse=field_order.get("Order") == "Descending")
    return rows


def _sort_key(elem: etree._Element | None) -> str:
    return "" if elem is None else (elem.text or "")


