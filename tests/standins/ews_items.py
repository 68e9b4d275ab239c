"""Calendar items as the EWS stand-in keeps them: the client's ``t:CalendarItem`` fields as elements (so every
field exchangelib writes comes back as written), plus what the server owns (ids, ChangeKey, sync sequence
numbers, occurrences). Also the item shape (which fields a response carries) and restrictions (FindItem)."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from lxml import etree

from tests.standins.ews_xml import Fault, ResponseError, T, find_t, kids, local, parse_time, t

# Schema order of ItemType then CalendarItemType; fields not listed (none expected) go last.
ORDER = [
    "MimeContent", "ItemId", "ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body", "Attachments",
    "DateTimeReceived", "Size", "Categories", "Importance", "InReplyTo", "IsSubmitted", "IsDraft", "IsFromMe",
    "IsResend", "IsUnmodified", "InternetMessageHeaders", "DateTimeSent", "DateTimeCreated", "ResponseObjects",
    "ReminderDueBy", "ReminderIsSet", "ReminderMinutesBeforeStart", "DisplayCc", "DisplayTo", "HasAttachments",
    "ExtendedProperty", "Culture", "EffectiveRights", "LastModifiedName", "LastModifiedTime", "IsAssociated",
    "WebClientReadFormQueryString", "WebClientEditFormQueryString", "ConversationId", "UniqueBody",
    "UID", "RecurrenceId", "DateTimeStamp", "Start", "End", "OriginalStart", "IsAllDayEvent",
    "LegacyFreeBusyStatus", "Location", "When", "IsMeeting", "IsCancelled", "IsRecurring", "MeetingRequestWasSent",
    "IsResponseRequested", "CalendarItemType", "MyResponseType", "Organizer", "RequiredAttendees",
    "OptionalAttendees", "Resources", "ConflictingMeetingCount", "AdjacentMeetingCount", "ConflictingMeetings",
    "AdjacentMeetings", "Duration", "TimeZone", "AppointmentReplyTime", "AppointmentSequenceNumber",
    "AppointmentState", "Recurrence", "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences",
    "DeletedOccurrences", "MeetingTimeZone", "StartTimeZone", "EndTimeZone", "ConferenceType",
    "AllowNewTimeProposal", "IsOnlineMeeting", "MeetingWorkspaceUrl", "NetShowUrl",
]
_RANK = {name: rank for rank, name in enumerate(ORDER)}
# Fields the server sets; a client writing them gets ErrorInvalidPropertySet, as from Exchange.
READ_ONLY = {
    "ItemId", "ParentFolderId", "DateTimeCreated", "LastModifiedTime", "CalendarItemType", "IsRecurring",
    "ModifiedOccurrences", "DeletedOccurrences", "FirstOccurrence", "LastOccurrence", "OriginalStart",
    "RecurrenceId", "IsMeeting", "MyResponseType", "Organizer", "IsCancelled", "Duration", "HasAttachments",
}
# xs:boolean fields; a client may write 0/1 (exchangelib does), Exchange answers false/true.
BOOLEANS = {
    "IsAllDayEvent", "ReminderIsSet", "IsResponseRequested", "AllowNewTimeProposal", "IsOnlineMeeting",
    "MeetingRequestWasSent", "IsDraft", "IsSubmitted", "IsFromMe", "IsResend", "IsUnmodified", "IsAssociated",
    "HasAttachments", "IsCancelled", "IsMeeting", "IsRecurring",
}
# Enumerations the schema allows: another value fails schema validation (a SOAP fault, as from Exchange).
ENUMS = {
    "LegacyFreeBusyStatus": {"Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"},
    "Sensitivity": {"Normal", "Personal", "Private", "Confidential"},
    "Importance": {"Low", "Normal", "High"},
}
# What Exchange stamps on a created item that omits them.
_DEFAULTS = {"Sensitivity": "Normal", "IsAllDayEvent": "false", "LegacyFreeBusyStatus": "Busy", "Importance": "Normal"}
_ATTRS = ("DistinguishedPropertySetId", "PropertySetId", "PropertyTag", "PropertyName", "PropertyId")


def extended_key(uri: etree._Element) -> tuple[str, ...]:
    """Identity of an ``ExtendedFieldURI`` (a property tag is case-insensitive hex)."""
    return tuple((uri.get(name) or "").lower() if name == "PropertyTag" else (uri.get(name) or "") for name in _ATTRS)


def field_name(uri: etree._Element) -> str:
    """The element a ``t:FieldURI`` names: ``calendar:Start`` -> ``Start``."""
    return (uri.get("FieldURI") or "").split(":")[-1]


@dataclass
class Shape:
    """Which fields a response carries: ``IdOnly`` plus the additional properties asked, or everything."""

    base: str = "AllProperties"
    names: set[str] = field(default_factory=set)
    extended: set[tuple[str, ...]] = field(default_factory=set)

    @classmethod
    def of(cls, elem: etree._Element | None) -> Shape:
        if elem is None:
            return cls()
        base = find_t(elem, "BaseShape")
        shape = cls(base=(base.text or "").strip() if base is not None else "IdOnly")
        for uri in kids(find_t(elem, "AdditionalProperties")):
            if local(uri) == "ExtendedFieldURI":
                shape.extended.add(extended_key(uri))
            elif local(uri) in ("FieldURI", "IndexedFieldURI"):
                shape.names.add(field_name(uri))
        return shape

    def wants(self, name: str) -> bool:
        return self.base != "IdOnly" or name in self.names


@dataclass
class StoredItem:
    """One calendar item (single, recurring master or exception) with what Exchange keeps beside it."""

    id: str
    folder_id: str
    change_key: str
    fields: dict[str, etree._Element]
    extended: dict[tuple[str, ...], etree._Element]
    created: datetime
    modified: datetime
    created_seq: int
    changed_seq: int
    deleted_seq: int | None = None
    master_id: str | None = None  # set on an exception: the master it modifies
    original_start: datetime | None = None  # exception: the start of the occurrence it replaced
    deleted_starts: list[datetime] = field(default_factory=list)  # master: original starts of deleted occurrences
    # (change key, fields whose change produced it): AutoResolve refuses a stale key only on a real conflict.
    history: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        elem = self.fields.get(name)
        return None if elem is None else (elem.text or "")

    @property
    def start(self) -> datetime:
        return parse_time(self.text("Start") or "")

    @property
    def end(self) -> datetime:
        return parse_time(self.text("End") or "")

    @property
    def recurrence(self) -> etree._Element | None:
        return self.fields.get("Recurrence")

    def changed_since(self, change_key: str) -> set[str] | None:
        """Fields changed after the version ``change_key`` named; None if that version is unknown."""
        keys = [key for key, _ in self.history]
        if change_key not in keys:
            return None
        changed: set[str] = set()
        for _, names in self.history[keys.index(change_key) + 1:]:
            changed |= names
        return changed


def zone_of(fields: dict[str, etree._Element]) -> str | None:
    """The time zone id (Windows name) of an item's fields: StartTimeZone, or MeetingTimeZone before 2010."""
    for name in ("StartTimeZone", "MeetingTimeZone"):
        elem = fields.get(name)
        if elem is not None:
            return elem.get("Id") or elem.get("Name")
    return None


def normalise(elem: etree._Element, zone: tzinfo | None) -> etree._Element:
    """A copy of a client-written field as Exchange stores it: Start/End in UTC, booleans as words."""
    copied = copy.deepcopy(elem)
    if local(copied) in BOOLEANS and copied.text:
        copied.text = "true" if copied.text.strip().lower() in ("1", "true") else "false"
    if local(copied) in ("Start", "End") and copied.text:
        text = copied.text.strip()
        try:
            if "T" not in text and zone is not None:  # a bare date: midnight in the item's zone
                moment = datetime.fromisoformat(text[:10]).replace(tzinfo=zone).astimezone(UTC)
            else:
                moment = parse_time(text)
        except ValueError:
            raise Fault("ErrorSchemaValidation", f"The request failed schema validation: {local(copied)} is not "
                                                 "a valid xs:dateTime.") from None
        copied.text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return copied


def client_fields(item_elem: etree._Element) -> tuple[dict[str, etree._Element], dict[tuple[str, ...], etree._Element]]:
    """The writable fields of a ``t:CalendarItem`` a client sent (read-only ones refused, enumerations
    checked)."""
    fields: dict[str, etree._Element] = {}
    extended: dict[tuple[str, ...], etree._Element] = {}
    for elem in item_elem:
        name = local(elem)
        if not name:
            continue
        if name == "ExtendedProperty":
            uri = find_t(elem, "ExtendedFieldURI")
            if uri is None:
                raise ResponseError("ErrorInvalidExtendedProperty", "ExtendedProperty without ExtendedFieldURI")
            extended[extended_key(uri)] = copy.deepcopy(elem)
        elif name in READ_ONLY:
            raise ResponseError("ErrorInvalidPropertySet", f"{name} is read-only")
        else:
            if name in ENUMS and (elem.text or "").strip() not in ENUMS[name]:
                raise Fault("ErrorSchemaValidation", f"The request failed schema validation: {name} has an invalid "
                                                     "value according to its data type.")
            fields[name] = elem
    return fields, extended


def with_defaults(fields: dict[str, etree._Element]) -> None:
    for name, value in _DEFAULTS.items():
        if name not in fields:
            fields[name] = t(name, value)


def render(tag: str, parts: dict[str, etree._Element], extended: list[etree._Element], shape: Shape) -> etree._Element:
    """A ``t:{tag}`` with ``parts`` in schema order, keeping only what ``shape`` asks for."""
    out = etree.Element(f"{{{T}}}{tag}", nsmap={"t": T})
    wanted = [(name, elem) for name, elem in parts.items() if name == "ItemId" or shape.wants(name)]
    props = [elem for elem in extended if extended_key(find_t(elem, "ExtendedFieldURI")) in shape.extended]
    if props:
        wanted.append(("ExtendedProperty", None))  # type: ignore[arg-type]
    for name, elem in sorted(wanted, key=lambda pair: _RANK.get(pair[0], len(ORDER))):
        if name == "ExtendedProperty":
            for prop in props:
                out.append(copy.deepcopy(prop))
        else:
            out.append(copy.deepcopy(elem))
    return out


def _compare(left: Any, right: str, operator: str) -> bool:
    if isinstance(left, datetime):
        try:
            other: Any = parse_time(right)
        except ValueError:
            return False
    elif left in ("true", "false"):
        left, other = left == "true", right.lower() == "true"
    else:
        other = right
        with contextlib.suppress(TypeError, ValueError):
            left, other = float(left), float(right)
    return {
        "IsEqualTo": lambda: left == other,
        "IsNotEqualTo": lambda: left != other,
        "IsGreaterThan": lambda: left > other,
        "IsGreaterThanOrEqualTo": lambda: left >= other,
        "IsLessThan": lambda: left < other,
        "IsLessThanOrEqualTo": lambda: left <= other,
    }[operator]()


def _values(item: dict[str, etree._Element], extended: list[etree._Element], uri: etree._Element) -> list[Any]:
    """The value(s) the ``FieldURI`` / ``ExtendedFieldURI`` of a restriction names on an item."""
    if local(uri) == "ExtendedFieldURI":
        key = extended_key(uri)
        for prop in extended:
            if extended_key(find_t(prop, "ExtendedFieldURI")) == key:
                values = find_t(prop, "Values")
                if values is not None:
                    return [v.text or "" for v in values]
                return [find_t(prop, "Value").text or ""]  # type: ignore[union-attr]
        return []
    name = field_name(uri)
    elem = item.get(name)
    if elem is None:
        return []
    if name == "ItemId":
        return [elem.get("Id")]
    if name in ("Start", "End", "DateTimeCreated", "LastModifiedTime", "OriginalStart") and elem.text:
        return [parse_time(elem.text)]
    return [elem.text or ""]


def matches(restriction: etree._Element, item: dict[str, etree._Element], extended: list[etree._Element]) -> bool:
    """Whether an item passes an EWS search expression (And, Or, Not, Exists, comparisons, Contains)."""
    kind = local(restriction)
    operands = [elem for elem in restriction if local(elem)]
    if kind == "And":
        return all(matches(elem, item, extended) for elem in operands)
    if kind == "Or":
        return any(matches(elem, item, extended) for elem in operands)
    if kind == "Not":
        return not matches(operands[0], item, extended)
    if kind == "Exists":
        return bool(_values(item, extended, operands[0]))
    if kind == "Contains":
        constant = find_t(restriction, "Constant")
        needle = (constant.get("Value") or "") if constant is not None else ""
        ignore_case = "Ignore" in (restriction.get("ContainmentComparison") or "")
        for value in _values(item, extended, operands[0]):
            haystack = str(value)
            if ignore_case:
                haystack, needle = haystack.lower(), needle.lower()
            if needle in haystack:
                return True
        return False
    if kind.startswith("Is"):
        holder = find_t(restriction, "FieldURIOrConstant")
        constant = find_t(holder, "Constant") if holder is not None else None
        if constant is None:
            raise ResponseError("ErrorUnsupportedQueryFilter", "the stand-in compares with constants only")
        right = constant.get("Value") or ""
        return any(_compare(value, right, kind) for value in _values(item, extended, operands[0]))
    raise ResponseError("ErrorUnsupportedQueryFilter", f"the stand-in does not evaluate {kind}")
