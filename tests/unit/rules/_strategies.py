"""Hypothesis strategies: items as adapters hand them over, with random markers, zones and options."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from bridge.rules import ConnectionOptions
from tests.unit.rules._ics import BERLIN_VTIMEZONE, CUSTOM_VTIMEZONE, OWNER, WINDOWS_VTIMEZONE, text, vevent

SECRET = st.text(alphabet="abcdefghijkmnpqrstuvwxyzäöüß", min_size=6, max_size=10).map(lambda s: f"secret{s}")
"""Personal text; the prefix makes an accidental match in calbridge's own output impossible."""

ZONES: dict[str, tuple[str, str]] = {
    # kind: (how a date-time is written, a VTIMEZONE the item may carry)
    "floating": ("{name}:{day}T{time}", ""),
    "utc": ("{name}:{day}T{time}Z", ""),
    "berlin": ("{name};TZID=Europe/Berlin:{day}T{time}", BERLIN_VTIMEZONE),
    "windows": ("{name};TZID=W. Europe Standard Time:{day}T{time}", WINDOWS_VTIMEZONE),
    "custom": ("{name};TZID=Customized Time Zone:{day}T{time}", CUSTOM_VTIMEZONE),
    "orphan": ("{name};TZID=Nowhere/Zone:{day}T{time}", ""),
    "date": ("{name};VALUE=DATE:{day}", ""),
}


@dataclass(frozen=True)
class Item:
    """Generated iCalendar text and the personal strings in it."""

    ical: str
    secrets: tuple[str, ...]


def when(kind: str, name: str, day: int, time: str = "090000") -> str:
    return ZONES[kind][0].format(name=name, day=f"202612{day:02}", time=time)


@st.composite
def _properties(draw: st.DrawFn, kind: str, day: int) -> tuple[list[str], list[str]]:
    """Timing for ``day`` plus a random subset of markers and personal properties."""
    lines = [when(kind, "DTSTART", day)]
    if draw(st.booleans()):
        lines.append(when(kind, "DTEND", day + 1 if kind == "date" else day, "100000"))
    else:
        lines.append("DURATION:P1D" if kind == "date" else "DURATION:PT1H")
    secrets: list[str] = []
    for name in ("SUMMARY", "DESCRIPTION", "LOCATION", "CATEGORIES", "X-MICROSOFT-LOCATIONDISPLAYNAME"):
        if draw(st.booleans()):
            secret = draw(SECRET)
            secrets.append(secret)
            lines.append(f"{name}:{secret}")
    if draw(st.booleans()):
        secret = draw(SECRET)
        secrets.append(secret)
        partstat = draw(st.sampled_from(["ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION"]))
        address = draw(st.sampled_from([OWNER, f"{secret}@example.org"]))
        lines.append(f"ATTENDEE;CN={secret};PARTSTAT={partstat}:mailto:{address}")
    if draw(st.booleans()):
        secret = draw(SECRET)
        secrets.append(secret)
        lines.append(f'X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-TITLE="{secret}":geo:52.5,13.4')
    for name, values in (
        ("TRANSP", ["OPAQUE", "TRANSPARENT"]),
        ("STATUS", ["CONFIRMED", "TENTATIVE", "CANCELLED"]),
        ("CLASS", ["PUBLIC", "PRIVATE", "CONFIDENTIAL"]),
        ("X-MICROSOFT-CDO-BUSYSTATUS", ["FREE", "TENTATIVE", "BUSY", "OOF", "WORKINGELSEWHERE"]),
    ):
        if draw(st.booleans()):
            lines.append(f"{name}:{draw(st.sampled_from(values))}")
    for line in ("GEO:52.5;13.4", "SEQUENCE:2", "CONFERENCE;VALUE=URI:https://meet.example.org/x"):
        if draw(st.booleans()):
            lines.append(line)
    if draw(st.booleans()):
        secret = draw(SECRET)
        secrets.append(secret)
        lines.append(f"BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT15M\nDESCRIPTION:{secret}\nEND:VALARM")
    return lines, secrets


@st.composite
def items(draw: st.DrawFn) -> Item:
    """One item: a master (maybe recurring), maybe overrides, in one zone kind, maybe with its VTIMEZONE."""
    kind = draw(st.sampled_from(sorted(ZONES)))
    uid = draw(st.sampled_from(["abc123@google.com", "040000008200E00074C5B7101A82E008", "secretuid@example.org"]))
    master, secrets = draw(_properties(kind, 7))
    overrides: list[str] = []
    if draw(st.booleans()):
        master.append("RRULE:FREQ=DAILY;COUNT=5")
        if draw(st.booleans()):
            master.append(when(kind, "EXDATE", 9))
        for day in draw(st.sets(st.sampled_from([8, 10, 11]), max_size=2)):
            lines, more = draw(_properties(kind, day))
            overrides.append(vevent("\n".join([when(kind, "RECURRENCE-ID", day), *lines]), uid))
            secrets.extend(more)
    components = [vevent("\n".join(master), uid), *overrides]
    drop_master = draw(st.booleans())
    if overrides and drop_master:
        components = overrides  # overrides only, as invitations to single instances arrive
    vtimezone = ZONES[kind][1]
    if vtimezone and (kind == "custom" or draw(st.booleans())):
        components.insert(0, vtimezone)
    if uid.startswith("secret"):
        secrets.append(uid)
    return Item(text(*components), tuple(secrets))


def options(no_personal_data: bool | None = None) -> st.SearchStrategy[ConnectionOptions]:
    return st.builds(
        ConnectionOptions,
        transparent_as_busy=st.booleans(),
        allday_as_busy=st.booleans(),
        anonymize_location=st.booleans(),
        no_personal_data=st.booleans() if no_personal_data is None else st.just(no_personal_data),
        private_without_details=st.booleans(),
        sync_timezone=st.sampled_from([None, "UTC", "America/New_York"]),
        uid_salt=st.binary(max_size=8),
        owner_addresses=st.just(frozenset({OWNER})),
    )
