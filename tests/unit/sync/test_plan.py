"""The plan of a sync run: one test per rule, then properties over a tiny simulator of both sides."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.adapters.base import Window
from bridge.sync.plan import (
    Action,
    ApplyRemoteToOwned,
    CancelOwned,
    Conflict,
    Direction,
    ForgetMapping,
    LinkMapping,
    LocalItem,
    LocalVersion,
    MappingRow,
    MirrorCreate,
    MirrorDelete,
    MirrorUpdate,
    Plan,
    PushCreate,
    PushDelete,
    PushUpdate,
    RemoteSide,
    RemoteVersion,
    UpdateMapping,
    plan,
    push_key,
)

CONN = 7
MINE = f"connection:{CONN}"
OTHER = "connection:99"
WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
IN = (datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 1, 11, tzinfo=UTC))
PAST = (datetime(2025, 6, 1, 10, tzinfo=UTC), datetime(2025, 6, 1, 11, tzinfo=UTC))
FUTURE = (datetime(2027, 6, 1, 10, tzinfo=UTC), datetime(2027, 6, 1, 11, tzinfo=UTC))
ACROSS = (datetime(2025, 12, 31, 23, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
SPANS = (IN, PAST, FUTURE, ACROSS)
L1 = LocalVersion("l1")  # the version of every item the helpers below make, unless told


def mirror_href(remote_id: str) -> str:
    return f"m-{remote_id}.ics"


def item(href: str, etag: str = "l1", content: str = "c1", origin: str = "booking",
         span: tuple[datetime, datetime] = IN) -> LocalItem:
    return LocalItem(href, etag, content, origin, span[0], span[1])


def version(etag: str = "r1", content: str = "c1", span: tuple[datetime, datetime] = IN,
            key: str | None = None) -> RemoteVersion:
    return RemoteVersion(etag, content, span[0], span[1], key)


def row(href: str, rid: str, remote_etag: str = "r1", local_etag: str = "l1", content: str = "c1",
        owner: str = "local") -> MappingRow:
    assert owner in ("local", "remote")
    return MappingRow(href, rid, remote_etag, local_etag, content, "local" if owner == "local" else "remote")


def side(changed: dict[str, RemoteVersion] | None = None, deleted: Iterable[str] = (),
         complete: bool = False) -> RemoteSide:
    return RemoteSide(changed or {}, frozenset(deleted), complete, WINDOW)


def run(remote: RemoteSide, items: Iterable[LocalItem] = (), rows: Iterable[MappingRow] = (), *,
        direction: Direction = "both", baseline: bool = False, **kwargs: object) -> Plan:
    return plan(remote, list(items), list(rows), connection_id=CONN, mirror_href=mirror_href,
                direction=direction, baseline=baseline, **kwargs)  # type: ignore[arg-type]


def mirrored(rid: str, etag: str = "l1", span: tuple[datetime, datetime] = IN) -> LocalItem:
    return item(mirror_href(rid), etag, "ingested", MINE, span)


def mirror_row(rid: str, remote_etag: str = "r1", content: str = "c1") -> MappingRow:
    return row(mirror_href(rid), rid, remote_etag, "l1", content, "remote")


# -- one test per rule --------------------------------------------------------------------

def test_a_new_external_event_is_mirrored_here() -> None:
    assert run(side({"e1": version()})).actions == (MirrorCreate("e1", "m-e1.ics", notify=True),)


def test_a_new_booking_or_client_item_is_pushed_with_a_stable_key() -> None:
    result = run(side(), [item("b.ics"), item("c.ics", origin="client")])
    assert result.actions == (PushCreate("b.ics", push_key(CONN, "b.ics")),
                              PushCreate("c.ics", push_key(CONN, "c.ics")))
    assert push_key(CONN, "b.ics") == push_key(CONN, "b.ics") != push_key(CONN + 1, "b.ics")
    assert not any(action.notify for action in result.actions)


def test_a_booking_moved_in_the_external_calendar_is_applied_here() -> None:
    result = run(side({"e1": version("r2", "moved")}), [item("b.ics")], [row("b.ics", "e1")])
    assert result.actions == (ApplyRemoteToOwned("e1", "b.ics", notify=True, seen=L1),)


def test_a_booking_deleted_in_the_external_calendar_is_cancelled_here() -> None:
    result = run(side(deleted=["e1"]), [item("b.ics")], [row("b.ics", "e1")])
    assert result.actions == (CancelOwned("e1", "b.ics", notify=True, seen=L1),)


def test_a_booking_changed_on_both_sides_keeps_the_booking_and_logs_a_conflict() -> None:
    result = run(side({"e1": version("r2", "theirs")}), [item("b.ics", "l2", "ours")], [row("b.ics", "e1")])
    assert result.actions == (Conflict("b.ics", "e1", "local"), PushUpdate("b.ics", "e1", "r2"))


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    result = run(side({"e1": version("r2", "same")}), [item("b.ics", "l2", "same")], [row("b.ics", "e1")])
    assert result.actions == (UpdateMapping("b.ics", "e1", "r2", "l2", "same"),)


def test_a_mirrored_event_changed_on_both_sides_takes_the_external_version() -> None:
    result = run(side({"e1": version("r2", "theirs")}), [mirrored("e1", etag="l9")], [mirror_row("e1")])
    assert result.actions == (Conflict("m-e1.ics", "e1", "remote"),
                              MirrorUpdate("e1", "m-e1.ics", notify=True, seen=LocalVersion("l9")))


def test_an_external_event_changed_there_is_updated_here() -> None:
    result = run(side({"e1": version("r2", "c2")}), [mirrored("e1")], [mirror_row("e1")])
    assert result.actions == (MirrorUpdate("e1", "m-e1.ics", notify=True, seen=L1),)


def test_an_external_event_deleted_there_is_removed_here() -> None:
    result = run(side(deleted=["e1"]), [mirrored("e1")], [mirror_row("e1")])
    assert result.actions == (MirrorDelete("e1", "m-e1.ics", notify=True, seen=L1),)


def test_a_booking_changed_here_is_updated_there() -> None:
    result = run(side(), [item("b.ics", "l2", "c2")], [row("b.ics", "e1")])
    assert result.actions == (PushUpdate("b.ics", "e1", "r1"),)


def test_a_booking_deleted_here_is_deleted_there() -> None:
    assert run(side(), [], [row("b.ics", "e1")]).actions == (PushDelete("e1", "r1", "b.ics"),)


def test_a_booking_deleted_here_but_changed_there_is_deleted_there() -> None:
    result = run(side({"e1": version("r2", "c2")}), [], [row("b.ics", "e1")])
    assert result.actions == (Conflict("b.ics", "e1", "local"), PushDelete("e1", "r2", "b.ics"))


def test_a_booking_changed_here_but_deleted_there_is_pushed_again() -> None:
    result = run(side(deleted=["e1"]), [item("b.ics", "l2", "c2")], [row("b.ics", "e1")])
    assert result.actions == (Conflict("b.ics", "e1", "local"), ForgetMapping("b.ics", "e1"),
                              PushCreate("b.ics", push_key(CONN, "b.ics")))


@pytest.mark.parametrize(
    ("remote", "local", "expected"),
    [
        pytest.param(version("r2"), item("b.ics"), UpdateMapping("b.ics", "e1", "r2", "l1", "c1"), id="remote-etag"),
        pytest.param(version("r1"), item("b.ics", "l2"), UpdateMapping("b.ics", "e1", "r1", "l2", "c1"),
                     id="local-etag"),
        pytest.param(version("r2"), item("b.ics", "l2"), UpdateMapping("b.ics", "e1", "r2", "l2", "c1"), id="both"),
    ],
)
def test_a_new_etag_over_the_same_content_only_refreshes_the_mapping(remote: RemoteVersion, local: LocalItem,
                                                                    expected: Action) -> None:
    assert run(side({"e1": remote}), [local], [row("b.ics", "e1")]).actions == (expected,)
    mirror = run(side({"e1": remote}), [mirrored("e1")], [mirror_row("e1")])
    assert mirror.actions == ((UpdateMapping("m-e1.ics", "e1", "r2", "l1", "c1"),) if remote.etag == "r2" else ())


def test_nothing_changed_means_nothing_to_do() -> None:
    items = [item("b.ics"), mirrored("e2")]
    rows = [row("b.ics", "e1"), mirror_row("e2")]
    assert run(side(), items, rows).is_empty
    assert run(side({"e1": version(), "e2": version()}, complete=True), items, rows).is_empty


@pytest.mark.parametrize("span", [PAST, FUTURE], ids=["past", "future"])
def test_an_event_that_left_the_window_is_neither_deleted_nor_counted(span: tuple[datetime, datetime]) -> None:
    items = [mirrored(f"e{n}", span=span) for n in range(20)] + [item("b.ics", span=span)]
    rows = [mirror_row(f"e{n}") for n in range(20)] + [row("b.ics", "e99")]
    result = run(side({"new": version()}, complete=True), items, rows)
    assert result.actions == (MirrorCreate("new", "m-new.ics", notify=True),)
    assert not result.held and not result.held_deletions


def test_events_outside_the_window_are_neither_mirrored_nor_pushed() -> None:
    result = run(side({"e1": version(span=PAST), "e2": version(span=FUTURE), "e3": version(span=ACROSS)}),
                 [item("b.ics", span=FUTURE), item("c.ics", span=ACROSS)])
    assert result.actions == (MirrorCreate("e3", "m-e3.ics", notify=True), PushCreate("c.ics", push_key(CONN, "c.ics")))


def test_a_mapping_whose_item_and_event_both_vanished_is_forgotten() -> None:
    assert run(side(deleted=["e1"]), [], [row("b.ics", "e1")]).actions == (ForgetMapping("b.ics", "e1"),)
    assert run(side(complete=True), [], [mirror_row("e2")]).actions == (ForgetMapping("m-e2.ics", "e2"),)


def test_an_event_the_rules_dropped_is_not_offered_again() -> None:
    rows = [row(mirror_href("e1"), "e1", "r1", "", "c1", "remote")]
    assert run(side({"e1": version()}), [], rows).is_empty
    assert run(side({"e1": version("r2", "c2")}), [], rows).actions == (MirrorUpdate("e1", "m-e1.ics", notify=True),)


def test_our_own_pushed_event_never_comes_back_as_a_mirrored_item() -> None:
    key = push_key(CONN, "b.ics")
    result = run(side({"x": version("r1", "c1", key=key)}), [item("b.ics")])
    assert result.actions == (LinkMapping("b.ics", "x", "r1", "l1", "c1"),)


def test_a_crash_after_a_remote_create_links_instead_of_duplicating() -> None:
    key = push_key(CONN, "b.ics")
    result = run(side({"x": version("r1", "old", key=key)}), [item("b.ics", "l2", "new")])
    assert result.actions == (LinkMapping("b.ics", "x", "r1", "", "old"), PushUpdate("b.ics", "x", "r1"))


def test_an_orphan_of_our_own_push_is_deleted_there_and_another_connections_is_mirrored() -> None:
    result = run(side({"x": version(key=push_key(CONN, "gone.ics")), "y": version(key=push_key(99, "b.ics"))}))
    assert result.actions == (PushDelete("x", "r1", None), MirrorCreate("y", "m-y.ics", notify=True))


def test_items_mirrored_from_another_connection_are_never_pushed() -> None:
    result = run(side(complete=True), [item("o.ics", origin=OTHER)], [])
    assert result.is_empty
    result = run(side(), [item("o.ics", "l2", "c2", origin=OTHER)], [row("o.ics", "e1")])
    assert not any(isinstance(action, PushCreate | PushUpdate) for action in result.actions)


def test_a_mirrored_item_without_a_mapping_is_removed_by_a_complete_listing() -> None:
    result = run(side({"e1": version()}, complete=True), [mirrored("zz"), mirrored("e1")])
    assert result.actions == (MirrorCreate("e1", "m-e1.ics", notify=False, seen=L1),
                              MirrorDelete(None, "m-zz.ics", seen=L1))
    assert run(side(), [mirrored("zz")]).is_empty


def test_an_empty_listing_holds_every_deletion_while_the_rest_runs() -> None:
    items = [mirrored("e1"), item("b.ics"), item("new.ics")]
    rows = [mirror_row("e1"), row("b.ics", "e2")]
    result = run(side(complete=True), items, rows)
    assert result.held
    assert result.held_deletions == (MirrorDelete("e1", "m-e1.ics", notify=True, seen=L1),
                                     CancelOwned("e2", "b.ics", notify=True, seen=L1))
    assert result.actions == (PushCreate("new.ics", push_key(CONN, "new.ics")),)


@pytest.mark.parametrize(
    ("mapped", "deleted", "held"),
    [
        pytest.param(20, 10, False, id="10-of-20-at-the-limit"),
        pytest.param(20, 11, True, id="11-of-20-over-half"),
        pytest.param(12, 10, False, id="10-is-the-minimum"),
        pytest.param(12, 11, True, id="11-of-12"),
        pytest.param(100, 50, False, id="half-of-100"),
        pytest.param(100, 51, True, id="51-of-100"),
    ],
)
def test_a_mass_deletion_is_held_while_everything_else_runs(mapped: int, deleted: int, held: bool) -> None:
    items = [mirrored(f"e{n}") for n in range(mapped)] + [item("new.ics")]
    rows = [mirror_row(f"e{n}") for n in range(mapped)]
    result = run(side(deleted=[f"e{n}" for n in range(deleted)]), items, rows)
    deletions = [action for action in result.actions if isinstance(action, MirrorDelete)]
    assert result.held is held
    assert len(deletions) == (0 if held else deleted)
    assert len(result.held_deletions) == (deleted if held else 0)
    assert PushCreate("new.ics", push_key(CONN, "new.ics")) in result.actions


def test_confirmed_deletions_are_not_held() -> None:
    result = run(side(complete=True), [mirrored("e1")], [mirror_row("e1")], confirm_deletions=True)
    assert not result.held
    assert result.actions == (MirrorDelete("e1", "m-e1.ics", notify=True, seen=L1),)


def pushed_bookings(count: int) -> tuple[list[LocalItem], list[MappingRow]]:
    return [item(f"b{n}.ics") for n in range(count)], [row(f"b{n}.ics", f"p{n}") for n in range(count)]


@pytest.mark.parametrize(
    ("pushed", "deleted", "held"),
    [
        pytest.param(12, 1, False, id="one-cancelled-booking-goes-out"),
        pytest.param(12, 10, False, id="10-is-the-minimum"),
        pytest.param(12, 11, True, id="11-of-12"),
        pytest.param(12, 12, True, id="all-of-them"),
        pytest.param(40, 20, False, id="half-of-40"),
        pytest.param(40, 21, True, id="21-of-40"),
    ],
)
def test_a_mass_deletion_here_is_held_from_the_external_calendar(pushed: int, deleted: int, held: bool) -> None:
    items, rows = pushed_bookings(pushed)
    result = run(side(), items[deleted:] + [item("new.ics")], rows)
    deletions = [action for action in result.actions if isinstance(action, PushDelete)]
    assert result.held is held
    assert len(deletions) == (0 if held else deleted)
    assert set(result.held_deletions) == ({PushDelete(f"p{n}", "r1", f"b{n}.ics") for n in range(deleted)}
                                          if held else set())
    assert PushCreate("new.ics", push_key(CONN, "new.ics")) in result.actions


def test_the_outbound_share_is_of_what_was_pushed_not_of_every_mapping() -> None:
    items, rows = pushed_bookings(12)
    items += [mirrored(f"e{n}") for n in range(30)]
    rows += [mirror_row(f"e{n}") for n in range(30)]
    result = run(side(), items[11:], rows)  # 11 of 12 pushed bookings deleted: 11 of 42 mappings
    assert result.held and len(result.held_deletions) == 11
    assert result.push_delete_limit == 10 and result.delete_limit == 21


def test_each_direction_is_held_on_its_own() -> None:
    items, rows = pushed_bookings(12)
    items += [mirrored(f"e{n}") for n in range(14)]
    rows += [mirror_row(f"e{n}") for n in range(14)]
    wiped_here = run(side(deleted=["e0"]), items[12:], rows)
    assert wiped_here.actions == (MirrorDelete("e0", "m-e0.ics", notify=True, seen=L1),)
    assert {type(action) for action in wiped_here.held_deletions} == {PushDelete}
    wiped_there = run(side(deleted=[f"e{n}" for n in range(14)]), items[1:], rows)  # 14 of 26 mappings
    assert wiped_there.actions == (PushDelete("p0", "r1", "b0.ics"),)
    assert {type(action) for action in wiped_there.held_deletions} == {MirrorDelete}
    both = run(side(deleted=[f"e{n}" for n in range(14)]), items[12:], rows)
    assert both.actions == () and len(both.held_deletions) == 26


def test_a_held_deletion_here_of_an_event_changed_there_logs_its_conflict_only_when_it_runs() -> None:
    _, rows = pushed_bookings(12)
    result = run(side({"p0": version("r2", "theirs")}), [], rows)
    assert result.held and PushDelete("p0", "r2", "b0.ics") in result.held_deletions
    assert result.actions == ()
    confirmed = run(side({"p0": version("r2", "theirs")}), [], rows, confirm_deletions=True)
    assert confirmed.actions[:2] == (Conflict("b0.ics", "p0", "local"), PushDelete("p0", "r2", "b0.ics"))


def test_orphans_of_our_own_push_are_deleted_however_many() -> None:
    listing = {f"o{n}": version(key=push_key(CONN, f"gone{n}.ics")) for n in range(20)}
    result = run(side(listing), [], [])
    assert not result.held and len(result.actions) == 20


def test_confirmed_outbound_deletions_are_not_held() -> None:
    _, rows = pushed_bookings(12)
    result = run(side(), [], rows, confirm_deletions=True)
    assert not result.held
    assert set(result.actions) == {PushDelete(f"p{n}", "r1", f"b{n}.ics") for n in range(12)}


def test_an_inbound_connection_holds_no_deletion_it_would_not_make() -> None:
    _, rows = pushed_bookings(12)
    assert run(side(), [], rows, direction="inbound") == Plan()


def test_a_baseline_notifies_no_one_and_reingests_every_listed_event() -> None:
    items = [mirrored("e1"), mirrored("e2"), item("b.ics")]
    rows = [mirror_row("e1"), mirror_row("e2"), row("b.ics", "e3")]
    listing = {"e1": version(), "e3": version("r2", "moved"), "e4": version()}
    result = run(side(listing, complete=True), items, rows, baseline=True)
    assert result.actions == (MirrorUpdate("e1", "m-e1.ics", seen=L1), MirrorDelete("e2", "m-e2.ics", seen=L1),
                              ApplyRemoteToOwned("e3", "b.ics", seen=L1), MirrorCreate("e4", "m-e4.ics"))
    assert not any(action.notify for action in result.actions)


def test_a_baseline_matches_events_to_their_mappings_first() -> None:
    result = run(side({"e1": version("r5", "c5")}, complete=True), [mirrored("e1")], [mirror_row("e1")], baseline=True)
    assert result.actions == (MirrorUpdate("e1", "m-e1.ics", seen=L1),)


def test_inbound_pushes_nothing_and_a_change_made_here_waits() -> None:
    result = run(side(deleted=["e1"]), [item("b.ics"), item("new.ics"), item("c.ics", "l2", "c2")],
                 [row("b.ics", "e1"), row("c.ics", "e2"), row("gone.ics", "e3")], direction="inbound")
    assert result.actions == (CancelOwned("e1", "b.ics", notify=True, seen=L1),)
    conflict = run(side({"e2": version("r2", "theirs")}), [item("c.ics", "l2", "ours")], [row("c.ics", "e2")],
                   direction="inbound")
    assert conflict.actions == (Conflict("c.ics", "e2", "local"), UpdateMapping("c.ics", "e2", "r2", "l1", "theirs"))


def test_outbound_mirrors_nothing_and_overwrites_external_changes_to_bookings() -> None:
    items = [item("b.ics"), item("c.ics"), mirrored("e3")]
    rows = [row("b.ics", "e1"), row("c.ics", "e2"), mirror_row("e3")]
    result = run(side({"e1": version("r2", "moved"), "new": version()}, deleted=["e2", "e3"]), items, rows,
                 direction="outbound")
    assert result.actions == (PushUpdate("b.ics", "e1", "r2"), ForgetMapping("c.ics", "e2"),
                              PushCreate("c.ics", push_key(CONN, "c.ics")))


# -- a simulator of both sides ----------------------------------------------------------------

class Crash(Exception):
    pass


@dataclass
class Event:
    etag: str
    content: str
    span: tuple[datetime, datetime]
    key: str | None = None


@dataclass
class World:
    """Both sides and the mapping table; ``apply`` is what the engine would do for each action."""

    direction: Direction = "both"
    remote: dict[str, Event] = field(default_factory=dict)
    local: dict[str, LocalItem] = field(default_factory=dict)
    mappings: dict[str, MappingRow] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (sequence, remote id) of every remote write
    seq: int = 0
    token: int | None = None
    counter: itertools.count[int] = field(default_factory=itertools.count)
    stale: int = 0

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    # remote side, as the provider's apps or our pushes change it
    def remote_put(self, rid: str, content: str, span: tuple[datetime, datetime], key: str | None) -> Event:
        self.seq += 1
        self.log.append((self.seq, rid))
        event = self.remote[rid] = Event(self.fresh("r"), content, span, key)
        return event

    def remote_delete(self, rid: str) -> None:
        if self.remote.pop(rid, None) is not None:
            self.seq += 1
            self.log.append((self.seq, rid))

    def side(self, complete: bool) -> RemoteSide:
        def seen(event: Event) -> RemoteVersion:
            return RemoteVersion(event.etag, event.content, event.span[0], event.span[1], event.key)

        if complete or self.token is None:
            listed = {rid: seen(e) for rid, e in self.remote.items() if e.span[1] > WINDOW.start
                      and e.span[0] < WINDOW.end}
            return RemoteSide(listed, frozenset(), True, WINDOW)
        touched = {rid for number, rid in self.log if number > self.token}
        changed = {rid: seen(self.remote[rid]) for rid in touched if rid in self.remote}
        return RemoteSide(changed, frozenset(touched - set(changed)), False, WINDOW)

    def local_put(self, href: str, content: str, origin: str, span: tuple[datetime, datetime]) -> LocalItem:
        new = self.local[href] = LocalItem(href, self.fresh("l"), content, origin, span[0], span[1])
        return new

    def ingest(self, rid: str, href: str) -> None:
        event = self.remote[rid]
        local_etag = ""
        if event.content.startswith("drop"):  # the rules drop it
            self.local.pop(href, None)
        else:
            local_etag = self.local_put(href, f"ingested {event.content}", MINE, event.span).etag
        self.mappings[href] = MappingRow(href, rid, event.etag, local_etag, event.content, "remote")

    def push(self, href: str, rid: str, key: str | None, half: bool) -> None:
        mine = self.local[href]
        event = self.remote_put(rid, mine.content_hash, (mine.start, mine.end or mine.start), key)
        if not half:
            self.mappings[href] = MappingRow(href, rid, event.etag, mine.etag, mine.content_hash, "local")

    def apply(self, action: Action, half: bool = False) -> None:
        """Carry out one action; ``half``: only its remote write (a crash before the mapping is saved)."""
        match action:
            case MirrorCreate(rid, href) | MirrorUpdate(rid, href):
                self.ingest(rid, href)
            case MirrorDelete(_, href) | CancelOwned(_, href):
                self.local.pop(href)
                self.mappings.pop(href, None)
            case ApplyRemoteToOwned(rid, href):
                event, mine = self.remote[rid], self.local[href]
                new = self.local_put(href, event.content, mine.origin, event.span)
                self.mappings[href] = MappingRow(href, rid, event.etag, new.etag, event.content, "local")
            case PushCreate(href, key):
                # a deterministic remote id: a create that finds the first attempt's result updates it
                self.push(href, f"k-{key}", key, half)
            case PushUpdate(href, rid, etag):
                # the plan cannot see changes to events outside the window of a complete listing:
                # gone (RemoteNotFound) = forget the mapping; a stale etag (PreconditionFailed) = a
                # conflict the plan did not see, which the owner (here) wins all the same
                if rid not in self.remote:
                    self.mappings.pop(href)
                    return
                self.stale += self.remote[rid].etag != etag
                self.push(href, rid, self.remote[rid].key, half)
            case PushDelete(rid, etag, href):
                self.stale += rid in self.remote and self.remote[rid].etag != etag
                self.remote_delete(rid)
                if href is not None and not half:
                    self.mappings.pop(href)
            case ForgetMapping(href, _):
                self.mappings.pop(href)
            case UpdateMapping(href, rid, remote_etag, local_etag, content):
                self.mappings[href] = MappingRow(href, rid, remote_etag, local_etag, content,
                                                 self.mappings[href].owner)
            case LinkMapping(href, rid, remote_etag, local_etag, content):
                self.mappings[href] = MappingRow(href, rid, remote_etag, local_etag, content, "local")
            case Conflict():
                pass

    def plan(self, complete: bool, baseline: bool = False, confirm: bool = True) -> Plan:
        return plan(self.side(complete), list(self.local.values()), list(self.mappings.values()),
                    connection_id=CONN, mirror_href=mirror_href, direction=self.direction,
                    baseline=baseline, confirm_deletions=confirm)

    def sync(self, complete: bool, baseline: bool = False, confirm: bool = True, crash_at: int | None = None,
             half: bool = False) -> Plan:
        fetched = self.seq
        result = self.plan(complete, baseline, confirm)
        for number, action in enumerate(result.actions):
            if number == crash_at:
                if half:
                    self.apply(action, half=True)
                raise Crash
            self.apply(action)
        if not result.held:
            self.token = fetched  # the engine saves the state only when nothing is held back
        return result

    def check_converged(self, inbound: bool = True, outbound: bool = True) -> None:
        """Exactly the remote set mirrored, every owned item in the window pushed once, nothing twice."""
        def inside(start: datetime, end: datetime) -> bool:
            return end > WINDOW.start and start < WINDOW.end

        by_rid = {m.remote_id: m for m in self.mappings.values()}
        assert len(by_rid) == len(self.mappings)
        mine_prefix = push_key(CONN, "")[:-64]
        for rid, event in self.remote.items():
            if event.key is not None and event.key.startswith(mine_prefix):
                # (outside the window an orphan may stay: a complete listing cannot tell moved from deleted)
                assert rid in by_rid or not inside(*event.span) or not outbound, "our push is unmapped"
                assert rid not in by_rid or by_rid[rid].owner == "local", "our push is mirrored"
            elif inside(*event.span) and inbound:
                assert rid in by_rid and by_rid[rid].owner == "remote", "an external event is not mirrored"
                href = by_rid[rid].item_href
                if event.content.startswith("drop"):
                    assert href not in self.local
                else:
                    assert self.local[href].content_hash == f"ingested {event.content}"
        for href, mine in self.local.items():
            if mine.origin == MINE:
                assert href in self.mappings, "a mirrored item without a mapping"
            elif mine.origin in ("booking", "client") and inside(mine.start, mine.end or mine.start) and outbound:
                assert href in self.mappings, "an owned item was not pushed"
        for href, mapping in self.mappings.items():
            copy = self.remote.get(mapping.remote_id)
            if outbound and mapping.owner == "local" and href in self.local and copy and inside(*copy.span):
                assert copy.content == self.local[href].content_hash, "a booking differs on the two sides"
        keys = [e.key for e in self.remote.values() if e.key is not None and e.key.startswith(mine_prefix)]
        assert len(keys) == len(set(keys)), "a duplicate push"


OPS = st.one_of(
    st.tuples(st.just("remote_create"), st.sampled_from(SPANS), st.sampled_from(["a", "b", "drop"]),
              st.sampled_from([None, push_key(99, "x.ics")])),
    st.tuples(st.just("remote_edit"), st.integers(0, 20), st.sampled_from(["a", "b", "c", "drop"]),
              st.sampled_from(SPANS)),
    st.tuples(st.just("remote_touch"), st.integers(0, 20)),
    st.tuples(st.just("remote_delete"), st.integers(0, 20)),
    st.tuples(st.just("local_create"), st.sampled_from(SPANS), st.sampled_from(["booking", "client"]),
              st.sampled_from(["a", "b"])),
    st.tuples(st.just("local_edit"), st.integers(0, 20), st.sampled_from(["a", "b", "c"]), st.sampled_from(SPANS)),
    st.tuples(st.just("local_touch"), st.integers(0, 20)),
    st.tuples(st.just("local_delete"), st.integers(0, 20)),
    st.tuples(st.just("other_connection_item"), st.sampled_from(SPANS)),
    st.tuples(st.just("sync"), st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(0, 6)), st.booleans()),
)


def body(word: str, span: tuple[datetime, datetime]) -> str:
    """Content as a hash sees it: the times are part of it (a moved event is a changed event)."""
    return f"{word}@{SPANS.index(span)}"


def perform(world: World, op: tuple[Any, ...]) -> None:
    kind, *args = op
    rids = sorted(world.remote)
    owned = sorted(h for h, i in world.local.items() if i.origin in ("booking", "client"))
    if kind == "remote_create":
        span, content, key = args
        world.remote_put(world.fresh("ext"), body(content, span), span, key)
    elif kind.startswith("remote_") and rids:
        rid = rids[args[0] % len(rids)]
        event = world.remote[rid]
        if kind == "remote_edit":
            world.remote_put(rid, body(args[1], args[2]), args[2], event.key)
        elif kind == "remote_touch":
            world.remote_put(rid, event.content, event.span, event.key)
        else:
            world.remote_delete(rid)
    elif kind == "local_create":
        span, origin, content = args
        world.local_put(world.fresh("item") + ".ics", body(content, span), origin, span)
    elif kind.startswith("local_") and owned:
        href = owned[args[0] % len(owned)]
        mine = world.local[href]
        if kind == "local_edit":
            world.local_put(href, body(args[1], args[2]), mine.origin, args[2])
        elif kind == "local_touch":
            world.local[href] = replace(mine, etag=world.fresh("l"))
        else:
            del world.local[href]
    elif kind == "other_connection_item":
        world.local_put(world.fresh("other") + ".ics", "theirs", OTHER, args[0])
    elif kind == "sync":
        complete, confirm, crash_at, half = args
        with contextlib.suppress(Crash):
            world.sync(complete, confirm=confirm, crash_at=crash_at, half=half)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(ops=st.lists(OPS, max_size=25), complete=st.booleans())
def test_a_sync_converges_after_any_changes_and_crashes(ops: list[tuple[Any, ...]], complete: bool) -> None:
    world = World()
    for op in ops:
        perform(world, op)
    world.sync(complete)
    assert world.plan(complete).is_empty
    world.check_converged()
    # the other kind of listing agrees, but for forgetting events the rules dropped that may have
    # left the window (a complete listing cannot tell, and nothing of them is stored)
    for action in world.plan(not complete).actions:
        assert isinstance(action, ForgetMapping) and action.item_href not in world.local


@FAST
@given(ops=st.lists(OPS, max_size=25), direction=st.sampled_from(["inbound", "outbound"]), complete=st.booleans())
def test_one_way_syncs_reach_a_fixed_point(ops: list[tuple[Any, ...]], direction: Direction, complete: bool) -> None:
    world = World()
    for op in ops[: len(ops) // 2]:
        perform(world, op)
    world.direction = direction  # switched after some two-way syncs
    for op in ops[len(ops) // 2:]:
        perform(world, op)
    world.sync(complete)
    assert world.plan(complete).is_empty
    world.check_converged(inbound=direction == "inbound", outbound=direction == "outbound")


@FAST
@given(ops=st.lists(OPS, max_size=20))
def test_a_baseline_converges_and_notifies_no_one(ops: list[tuple[Any, ...]]) -> None:
    world = World()
    for op in ops:
        perform(world, op)
    result = world.sync(complete=True, baseline=True)
    assert not any(action.notify for action in (*result.actions, *result.held_deletions))
    assert world.plan(complete=True).is_empty
    world.check_converged()


# -- properties over arbitrary inputs -----------------------------------------------------------

@dataclass(frozen=True)
class Inputs:
    remote: RemoteSide
    items: list[LocalItem]
    rows: list[MappingRow]
    direction: Direction
    baseline: bool
    min_delete_count: int
    max_delete_share: float

    def plan(self, baseline: bool | None = None) -> Plan:
        return plan(self.remote, self.items, self.rows, connection_id=CONN, mirror_href=mirror_href,
                    direction=self.direction, baseline=self.baseline if baseline is None else baseline,
                    min_delete_count=self.min_delete_count, max_delete_share=self.max_delete_share)


@st.composite
def inputs(draw: st.DrawFn) -> Inputs:
    """Arbitrary, unrelated inputs: random mappings (unique on both sides), items of every origin, events."""
    hrefs = [f"h{n}.ics" for n in range(draw(st.integers(0, 16)))]
    rids = [f"e{n}" for n in range(draw(st.integers(0, 16)))]
    mapped = draw(st.integers(0, min(len(hrefs), len(rids))))
    rows = [MappingRow(hrefs[n], rids[n], draw(st.sampled_from(["r1", "r2"])), draw(st.sampled_from(["l1", "l2", ""])),
                       draw(st.sampled_from(["c1", "c2"])), draw(st.sampled_from(["local", "remote"])))
            for n in range(mapped)]
    items = [LocalItem(href, draw(st.sampled_from(["l1", "l2"])), draw(st.sampled_from(["c1", "c2", "c3"])),
                       draw(st.sampled_from(["booking", "client", MINE, OTHER])), *draw(st.sampled_from(SPANS)))
             for href in hrefs if draw(st.booleans())]
    keys = st.sampled_from([None, *(push_key(CONN, h) for h in hrefs[:4]), push_key(99, "h0.ics")])
    changed = {rid: RemoteVersion(draw(st.sampled_from(["r1", "r2", "r3"])), draw(st.sampled_from(["c1", "c2", "c3"])),
                                  *draw(st.sampled_from(SPANS)), draw(keys))
               for rid in rids if draw(st.booleans())}
    deleted = frozenset(rid for rid in rids if rid not in changed and draw(st.booleans()))
    return Inputs(RemoteSide(changed, deleted, draw(st.booleans()), WINDOW), items, rows,
                  draw(st.sampled_from(["both", "inbound", "outbound"])), draw(st.booleans()),
                  draw(st.integers(0, 12)), draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])))


@FAST
@given(inputs())
def test_a_baseline_plan_never_notifies(given: Inputs) -> None:
    result = given.plan(baseline=True)
    assert not any(action.notify for action in (*result.actions, *result.held_deletions))


@FAST
@given(inputs())
def test_no_plan_deletes_more_than_the_threshold_unless_held(given: Inputs) -> None:
    result = given.plan()
    assert result.held is bool(result.held_deletions)
    pushed = sum(1 for r in given.rows if r.owner == "local")
    for kinds, limit in (((MirrorDelete, CancelOwned), max(given.min_delete_count,
                                                           given.max_delete_share * len(given.rows))),
                         ((PushDelete,), max(given.min_delete_count, given.max_delete_share * pushed))):
        applied = [a for a in result.actions if isinstance(a, kinds) and a.item_href is not None]
        held = [a for a in result.held_deletions if isinstance(a, kinds)]
        assert len(applied) <= limit
        assert not (applied and held), "a direction is held as a whole"
    assert all(a.item_href is not None for a in result.held_deletions if isinstance(a, PushDelete))


@FAST
@given(inputs())
def test_no_action_pushes_a_mirrored_item_or_mirrors_our_own_push(given: Inputs) -> None:
    result = given.plan()
    items = {i.href: i for i in given.items}
    mirrored_rids = {r.remote_id for r in given.rows if r.owner == "remote"}
    for action in result.actions:
        if isinstance(action, PushCreate | PushUpdate | LinkMapping):
            assert items[action.item_href].origin in ("booking", "client")
        if isinstance(action, PushUpdate | PushDelete):
            assert action.remote_id not in mirrored_rids
        if isinstance(action, MirrorCreate):
            key = given.remote.changed[action.remote_id].key
            assert key is None or not key.startswith(push_key(CONN, "")[:-64])
        if given.direction == "inbound":
            assert not isinstance(action, PushCreate | PushUpdate | PushDelete)
        if given.direction == "outbound":
            assert not isinstance(action, MirrorCreate | MirrorUpdate | MirrorDelete | ApplyRemoteToOwned | CancelOwned)


@FAST
@given(inputs())
def test_every_action_that_writes_here_carries_the_version_it_was_planned_against(given: Inputs) -> None:
    items = {i.href: i for i in given.items if i.origin in ("booking", "client", MINE)}
    for action in given.plan().actions:
        if isinstance(action, MirrorCreate | MirrorUpdate | MirrorDelete | ApplyRemoteToOwned | CancelOwned):
            found = items.get(action.item_href)
            assert action.seen == (LocalVersion(found.etag, found.booking) if found else LocalVersion())


def test_a_booking_is_planned_against_its_item_and_its_own_state() -> None:
    booked = replace(item("b.ics", "l7"), booking="confirmed:2")
    result = run(side({"e1": version("r2", "moved")}), [booked], [row("b.ics", "e1", local_etag="l7")])
    assert result.actions == (ApplyRemoteToOwned("e1", "b.ics", notify=True, seen=LocalVersion("l7", "confirmed:2")),)
    cancelled = run(side(deleted=["e1"]), [booked], [row("b.ics", "e1", local_etag="l7")])
    assert cancelled.actions == (CancelOwned("e1", "b.ics", notify=True, seen=LocalVersion("l7", "confirmed:2")),)
    assert run(side({"e2": version()}), [], []).actions[0].seen == LocalVersion()  # expects no item there


def test_plans_are_deterministic() -> None:
    items = [item("b.ics"), mirrored("e1"), item("a.ics", "l2", "c2")]
    rows = [row("a.ics", "e2"), mirror_row("e1")]
    remote = side({"e1": version("r2", "c2"), "x": version()}, deleted=["e2"])
    assert run(remote, items, rows) == run(remote, list(reversed(items)), list(reversed(rows)))

