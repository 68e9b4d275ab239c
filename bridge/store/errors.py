"""Store errors carry their facts; they never speak HTTP (the web layer maps them)."""

from __future__ import annotations


class StoreError(Exception):
    """Base of everything the store raises on purpose."""


class NotFound(StoreError):
    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key!r} does not exist")
        self.what = what
        self.key = key


class AlreadyExists(StoreError):
    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key!r} already exists")
        self.what = what
        self.key = key


class ItemExists(StoreError):
    """Another href of the calendar already holds this UID (CalDAV no-uid-conflict)."""

    def __init__(self, uid: str, href: str) -> None:
        super().__init__(f"UID is already used by {href!r}")
        self.uid = uid
        self.href = href


class EtagMismatch(StoreError):
    def __init__(self, href: str, expected: str, actual: str | None) -> None:
        super().__init__(f"item {href!r} has etag {actual!r}, not {expected!r}")
        self.href = href
        self.expected = expected
        self.actual = actual


class InvalidSyncToken(StoreError):
    """A sync token that is malformed, from another calendar, from the future or expired."""


class CalendarProtected(StoreError):
    """CalDAV clients may not delete or overwrite this calendar as a whole: it was provisioned, or
    it holds bookings or connections (the booking engine depends on them)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"calendar {path!r} is provisioned or holds bookings or connections; "
                         "it is removed with the admin page, the API or the command line")
        self.path = path


class ItemMirrored(StoreError):
    """CalDAV clients may not overwrite, delete or move an item mirrored from a connection: the next
    sync would only bring it back (the /dav gate refuses first with 403; this is the backstop)."""

    def __init__(self, href: str) -> None:
        super().__init__(f"item {href!r} is mirrored from a connection and read-only to CalDAV clients")
        self.href = href


class CalendarLimitReached(StoreError):
    """The owner already has as many client-made calendars as ``mkcalendar_limit`` allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a user may have at most {limit} calendars made by CalDAV clients "
                         "(setting mkcalendar_limit); remove one first")
        self.limit = limit
