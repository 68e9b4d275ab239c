"""One sync run of one connection: fetch, plan, apply, log, reschedule.

1. A ``sync_run`` row is written first (status ``running``), so the log shows a run in progress.
2. The adapter fetches what changed since the saved state, or everything in the sync window
   when there is no state, a baseline is due (an option was loosened) or the token was reset.
   A state the provider no longer knows (:class:`~bridge.adapters.base.TokenInvalid`) turns the
   run into a baseline: a full fetch, and no customer is notified of anything it finds.
3. :func:`bridge.sync.plan.plan` decides every action from the fetched events, the calendar's
   items and the mapping table; :class:`bridge.sync.apply.Applier` carries them out and, while the
   connection's ``notify_customers`` is on, queues each customer's notice in the transaction of its
   change (:mod:`bridge.notify.mirrored`); a baseline remembers customers and tells no one.
4. The fetched state is saved only after every action ran and only when no deletion was held
   (an incremental delta would not report the held deletions again) and no action was skipped
   because its item changed here after the plan (:mod:`bridge.sync.versions`; the next run plans
   that remote change again, against what is here now). A run that fails halfway saves nothing
   either: the next run fetches the same changes, and what was applied already is recognised
   through the mapping table, so nothing is duplicated or lost.
5. The run row gets its status, counts and the number of upstream requests, and the connection
   its next due time (:mod:`bridge.sync.backoff`), in the transaction that queues the alert of a
   connection that just stopped or was held (:mod:`bridge.sync.alerting`).

The run holds no database transaction while it talks to the provider.
"""

from __future__ import annotations

import json
import logging
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge import adapters, expand
from bridge.adapters.base import (
    Adapter,
    AdapterError,
    AuthExpired,
    Delta,
    RateLimited,
    RemoteEvent,
    TokenInvalid,
    Watchable,
    Window,
)
from bridge.ical.zones import parse_calendar
from bridge.notify.mirrored import MirrorNotifier, sender_for
from bridge.secrets import SecretError, Secrets
from bridge.settings import Settings
from bridge.store import mappings
from bridge.store.db import Store
from bridge.store.errors import NotFound
from bridge.store.models import UNBOUNDED, Calendar, Connection, Item, SyncRun, User
from bridge.sync import alerting, backoff, push, versions
from bridge.sync import checkpoint as checkpoints
from bridge.sync.apply import Applier
from bridge.sync.content import content_hash, push_form
from bridge.sync.mirror import href_for, notifies_customers, options_for
from bridge.sync.outcome import RunOutcome, RunStatus
from bridge.sync.plan import (
    OWNED_ORIGINS,
    LocalItem,
    MappingRow,
    Plan,
    RemoteSide,
    RemoteVersion,
    connection_origin,
    plan,
)
from bridge.sync.runlog import RunLog
from bridge.sync.slots import ProviderSlots, process_slots

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "manual", "reset", "push", "options")

AdapterOpener = Callable[[adapters.Account], AbstractContextManager[Adapter]]
Progress = Callable[[int, int], None]


class ConnectionDisabled(ValueError):
    """A disabled connection is not synced, not even on request: disabling stops all syncing at once."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(f"connection {connection_id} is disabled; enable it to sync")
        self.connection_id = connection_id


@dataclass(frozen=True)
class Engine:
    """What a run needs from outside: the store, the settings, the keys, a way to reach the provider."""

    store: Store
    settings: Settings
    secrets: Secrets
    open_adapter: AdapterOpener = adapters.open_adapter
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    slots: ProviderSlots | None = None  # None: the process's, sized by settings.provider_concurrency
    on_planned: Callable[[Plan], None] | None = None  # hears each plan before it is applied (a test's seam)

    def run(self, connection_id: int, *, trigger: str = "schedule", confirm_deletions: bool = False,
            progress: Progress | None = None) -> RunOutcome:
        """One run (module docstring). Raises NotFound for an unknown connection and ConnectionDisabled
        for a disabled one (nothing is logged for those); every other
        failure is recorded in the run's row and in the outcome. ``progress`` hears (done, total)
        after each planned action (a progress bar)."""
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
        started = self.clock()
        job = self._start(connection_id, trigger, started)
        runlog = RunLog()
        status: RunStatus = "failed"
        error: BaseException | None = None
        requests = 0
        baseline = job.baseline
        try:
            with self._slots().slot(job.provider), self.open_adapter(self._account(job)) as adapter:
                try:
                    status, baseline = self._sync(job, adapter, runlog, confirm_deletions, progress)
                    self._keep_push_channel(job, adapter)
                finally:
                    requests = adapter.requests_made
        except (AdapterError, NotFound, expand.ExpansionError, ValueError, OSError) as exc:
            error = exc
        except Exception as exc:  # a bug must not stop the worker; the log gets the class, not the content
            log.error("sync run %s of connection %s failed with %s", job.run_id, connection_id, type(exc).__name__)
            error = exc
        outcome = RunOutcome(
            run_id=job.run_id, status="failed" if error is not None else status,
            error_class=type(error).__name__ if error is not None else None,
            retry_after=error.retry_after if isinstance(error, RateLimited) else None,
            auth_failed=isinstance(error, AuthExpired))
        self._finish(job, outcome, runlog, requests, baseline, error)
        return outcome

    # -- the run --------------------------------------------------------------------------------

    def _start(self, connection_id: int, trigger: str, now: datetime) -> _Job:
        with self.store.write() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                raise NotFound("connection", str(connection_id))
            if not connection.enabled:
                raise ConnectionDisabled(connection.id)
            if trigger == "reset":
                connection.sync_state = None
            if connection.push_pending:  # a provider's notice (/hooks) made this run due
                connection.push_pending = False
                if trigger == "schedule":
                    trigger = "push"
            calendar = session.get(Calendar, connection.calendar_id)
            owner = session.get(User, calendar.owner_id) if calendar is not None else None
            assert calendar is not None and owner is not None
            baseline = connection.sync_state is None or connection.baseline_due
            _close_interrupted(session, connection.id, now)
            row = SyncRun(tenant_id=connection.tenant_id, connection_id=connection.id, trigger=trigger,
                          started_at=now, status="running", baseline=baseline)
            session.add(row)
            session.flush()
            options = options_for(connection, calendar, owner)
            read_only = connection.provider in adapters.READ_ONLY
            return _Job(
                run_id=row.id, connection_id=connection.id, calendar_id=calendar.id, baseline=baseline,
                saved=checkpoints.decode(connection.sync_state),
                direction="inbound" if read_only else connection.direction,
                window=Window(now - timedelta(days=connection.window_past_days),
                              now + timedelta(days=connection.window_future_days)),
                sync_zone=options.sync_timezone, zone=options.sync_timezone or calendar.timezone,
                provider=connection.provider, server_url=connection.server_url,
                remote_calendar=connection.remote_calendar, credentials=connection.credentials,
                notify=notifies_customers(connection),
                before=alerting.Before(connection.needs_attention, connection.failures or 0))

    def _keep_push_channel(self, job: _Job, adapter: Adapter) -> None:
        address = push.hook_address(self.settings, job.provider)
        if address is not None and isinstance(adapter, Watchable):
            push.keep_channel(self.store, adapter, job.connection_id, address, self.clock())

    def _slots(self) -> ProviderSlots:
        return self.slots if self.slots is not None else process_slots(self.settings.provider_concurrency)

    def _account(self, job: _Job) -> adapters.Account:
        """The account with its credentials decrypted, inside the run (a key that does not fit fails the run)."""
        credentials = json.loads(self.secrets.decrypt(job.credentials)) if job.credentials else {}
        return adapters.Account(job.provider, job.server_url, job.remote_calendar, credentials,
                                save_credentials=credential_saver(self.store, self.secrets, job.connection_id),
                                ca_file=self.settings.provider_ca_file or None)

    def _sync(self, job: _Job, adapter: Adapter, runlog: RunLog, confirm: bool,
              progress: Progress | None) -> tuple[RunStatus, bool]:
        baseline = job.baseline
        try:
            delta = adapter.fetch(None if baseline else job.saved.adapter_state, job.window)
        except TokenInvalid:
            runlog.token_invalid = True
            baseline = True
            delta = adapter.fetch(None, job.window)
        runlog.fetched = len(delta.changed)
        runlog.remote_deleted = len(delta.deleted)
        quiet = not (baseline or delta.complete or delta.changed or delta.deleted)
        if quiet and self._nothing_changed_here(job):
            self._save_state(job, delta, baseline, job.saved.local_counter, job.saved.planned_at)
            runlog.count("plan_skipped")
            return "ok", baseline
        planned_at = self.clock()
        decided, counter = self._plan(job, delta, baseline, confirm)
        for held in decided.held_deletions:
            runlog.hold(type(held).__name__, held.item_href or "")
        remote = {event.remote_id: event for event in delta.changed}
        applier = Applier(self.store, adapter, job.connection_id, remote, runlog, self.clock, job.sync_zone,
                          self.settings.sync_token_max_age_days, notifier=self._notifier(job, baseline))
        self._apply(applier, decided, progress)
        if decided.held:
            return "held", baseline
        if runlog.counts["skipped_stale"]:
            return "partial", baseline
        if runlog.counts["out.created"] and delta.state is not None:
            delta, counter, planned_at, held = self._catch_up(job, adapter, applier, delta.state, confirm)
            if held:
                return "held", baseline
            if runlog.counts["skipped_stale"]:
                return "partial", baseline
        self._save_state(job, delta, baseline, counter, planned_at)
        return ("partial" if runlog.counts["errors"] else "ok"), baseline

    def _notifier(self, job: _Job, baseline: bool) -> MirrorNotifier | None:
        """The run's customer notices: None while ``notify_customers`` is off or no mail is configured;
        on a baseline one that remembers customers and tells no one."""
        if not (job.notify and self.settings.mail_enabled):
            return None
        with self.store.read() as session:
            calendar = session.get(Calendar, job.calendar_id)
            owner = session.get(User, calendar.owner_id) if calendar is not None else None
            if calendar is None or owner is None:
                raise NotFound("calendar", str(job.calendar_id))
            sender = sender_for(session, self.settings, self.secrets, calendar, owner)
        return MirrorNotifier(sender, job.connection_id, zoneinfo.ZoneInfo(job.zone), notify=not baseline)

    def _catch_up(self, job: _Job, adapter: Adapter, applier: Applier, state: str,
                  confirm: bool) -> tuple[Delta, int, datetime, bool]:
        """Fetch once more after this run's own creates, so the state saved postdates them.

        A server may report only the net difference since a token (Xandikos does; RFC 6578 allows
        it): an event we created after the fetched token and the provider deleted before the next
        run would then never be reported, and its booking would stay confirmed. The same holds for
        the etag listing of the ctag path. What this fetch lists (our creates, anything changed
        meanwhile) is planned and applied like any delta.
        """
        delta = adapter.fetch(state, job.window)
        planned_at = self.clock()
        decided, counter = self._plan(job, delta, False, confirm)
        applier.remote = {event.remote_id: event for event in delta.changed}
        self._apply(applier, decided)
        return delta, counter, planned_at, decided.held

    def _apply(self, applier: Applier, decided: Plan, progress: Progress | None = None) -> None:
        if self.on_planned is not None:
            self.on_planned(decided)
        applier.run(decided.actions, progress)

    def _nothing_changed_here(self, job: _Job) -> bool:
        with self.store.read() as session:
            counter = session.scalar(select(Calendar.change_counter).where(Calendar.id == job.calendar_id))
        return counter is not None and job.saved.allows_skip(counter, job.direction, self.clock())

    def _plan(self, job: _Job, delta: Delta, baseline: bool, confirm: bool) -> tuple[Plan, int]:
        """The plan, and the calendar's change counter as of the items it was made from."""
        zone = zoneinfo.ZoneInfo(job.zone)
        with self.store.read() as session:
            if session.get(Connection, job.connection_id) is None:
                raise NotFound("connection", str(job.connection_id))
            counter = session.scalar(select(Calendar.change_counter).where(Calendar.id == job.calendar_id)) or 0
            rows = mappings.of_connection(session, job.connection_id)
            by_href = {row.item_href: row for row in rows}
            states = versions.booking_states(session, job.calendar_id)
            local = list(_local_items(session, job, by_href, states, zone))
        changed = {event.remote_id: _version(event, zone, job.window) for event in delta.changed}
        remote = RemoteSide(changed=changed, deleted=frozenset(delta.deleted) - changed.keys(),
                            complete=delta.complete, window=job.window)
        return plan(remote, local, [MappingRow(r.item_href, r.remote_id, r.remote_etag, r.local_etag,
                                               r.content_hash, "local" if r.owner == "local" else "remote")
                                    for r in rows],
                    connection_id=job.connection_id, mirror_href=partial(href_for, job.connection_id),
                    direction=job.direction,  # type: ignore[arg-type]
                    baseline=baseline, confirm_deletions=confirm), counter

    def _save_state(self, job: _Job, delta: Delta, baseline: bool, counter: int | None,
                    planned_at: datetime | None) -> None:
        with self.store.write() as session:
            connection = session.get(Connection, job.connection_id)
            if connection is None:
                return
            connection.sync_state = checkpoints.encode(checkpoints.Checkpoint(delta.state, counter, job.direction,
                                                                              planned_at))
            if baseline:
                connection.baseline_due = False

    def _finish(self, job: _Job, outcome: RunOutcome, runlog: RunLog, requests: int, baseline: bool,
                error: BaseException | None) -> None:
        now = self.clock()
        with self.store.write() as session:
            row = session.get(SyncRun, job.run_id)
            connection = session.get(Connection, job.connection_id)
            if row is not None:
                row.status = outcome.status
                row.finished_at = now
                row.baseline = baseline
                row.counts = runlog.to_json()
                row.requests = requests
                row.error_class = outcome.error_class
                row.error_message = _plain_words(error) if error is not None else None
            if connection is not None:
                backoff.reschedule(connection, outcome, now)
                if row is not None:
                    self._alert(session, job, connection, row, now)
            expired = now - timedelta(days=self.settings.sync_log_days)
            session.execute(delete(SyncRun).where(SyncRun.connection_id == job.connection_id,
                                                  SyncRun.id != job.run_id, SyncRun.started_at < expired))

    def _alert(self, session: Session, job: _Job, connection: Connection, row: SyncRun, now: datetime) -> None:
        """Queue the alert the run's end calls for (:mod:`bridge.sync.alerting`) in a savepoint: a
        failure there is logged and must not lose the run's log row."""
        session.flush()
        try:
            with session.begin_nested():
                alerting.alert_after_run(session, self.settings, self.secrets, connection, job.before, row, now)
        except Exception as exc:
            log.error("queuing the alert of connection %s failed with %s", job.connection_id, type(exc).__name__)


@dataclass(frozen=True)
class _Job:
    """What a run read from its connection at the start (nothing session-bound)."""

    run_id: int
    connection_id: int
    calendar_id: int
    baseline: bool
    saved: checkpoints.Checkpoint  # the adapter's state and what the last plan saw
    direction: str
    window: Window
    sync_zone: str | None  # the option as set: None keeps the item's own zones when pushing
    zone: str  # where floating times are read: the sync zone, else the calendar's
    provider: str
    server_url: str
    remote_calendar: str
    credentials: str = field(repr=False)  # encrypted
    notify: bool = False  # the connection's notify_customers option
    before: alerting.Before = alerting.Before(False, 0)  # the connection's state before the run


def credential_saver(store: Store, secrets: Secrets, connection_id: int) -> adapters.CredentialSaver:
    """What an account's ``save_credentials`` does: keep what the adapter renewed, encrypted, in a
    transaction of its own, at once (Account.save_credentials says why)."""

    def save(credentials: Mapping[str, str]) -> None:
        sealed = secrets.encrypt(json.dumps(dict(credentials), sort_keys=True))
        with store.write() as session:
            connection = session.get(Connection, connection_id)
            if connection is not None:
                connection.credentials = sealed

    return save


def _version(event: RemoteEvent, zone: zoneinfo.ZoneInfo, window: Window) -> RemoteVersion:
    try:
        start, end = expand.span(event.calendar, zone)
        open_end: datetime | None = None if end >= UNBOUNDED else end
    except expand.ExpansionError:  # let the store refuse it and the log say so
        start, open_end = window.start, None
    return RemoteVersion(etag=event.etag, content_hash=content_hash(event.calendar, zone), start=start,
                         end=open_end, key=event.key)


def _local_items(session: Session, job: _Job, mapped: dict[str, mappings.MappingValues],
                 booking_states: dict[str, str], zone: zoneinfo.ZoneInfo) -> Iterator[LocalItem]:
    """The calendar's owned items and this connection's mirrored ones, not window-filtered (an owned
    mapped item left out would look deleted here), each with the state of its booking, if any. An
    item's content hash is computed only where the planner reads it: unmapped items, and mapped ones
    whose etag moved."""
    origins = [*OWNED_ORIGINS, connection_origin(job.connection_id)]
    query = (select(Item.href, Item.etag, Item.origin, Item.span_start, Item.span_end, Item.id)
             .where(Item.calendar_id == job.calendar_id, Item.origin.in_(origins)))
    for href, etag, origin, span_start, span_end, item_id in session.execute(query):
        row = mapped.get(href)
        if origin not in OWNED_ORIGINS:
            digest = row.content_hash if row is not None else ""
        elif row is not None and row.local_etag == etag:
            digest = row.content_hash
        else:
            text = session.scalar(select(Item.text).where(Item.id == item_id)) or ""
            digest = _owned_hash(text, job.sync_zone, zone)
        yield LocalItem(href=href, etag=etag, content_hash=digest, origin=origin, start=span_start,
                        end=None if span_end >= UNBOUNDED else span_end, booking=booking_states.get(href))


def _owned_hash(text: str, sync_zone: str | None, zone: zoneinfo.ZoneInfo) -> str:
    return content_hash(push_form(parse_calendar(text), sync_zone), zone)


def _close_interrupted(session: Session, connection_id: int, now: datetime) -> None:
    """Runs still marked running belong to a process that died (one run per connection at a time:
    the lease, or the caller, sees to that): the log must not show them running forever."""
    for stale in session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id,
                                                       SyncRun.status == "running")):
        stale.status = "failed"
        stale.finished_at = now
        stale.error_class = "Interrupted"
        stale.error_message = "the run ended without finishing (the process stopped); the next run picked up"


def _plain_words(error: BaseException) -> str:
    """The error for the log: adapters' messages hold no event content by contract; others give their class."""
    if isinstance(error, AdapterError | NotFound | SecretError):
        return str(error)[:500]
    return f"internal error ({type(error).__name__})"
