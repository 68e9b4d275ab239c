#!/usr/bin/env python3
"""Provider benchmark (issues 6 and 7): one quiet cycle of 1,000 Google, Microsoft and Exchange connections.

For each provider, the stand-in (tests/standins/) holds N calendars with a few events each (a single
event and a weekly series with a moved instance), written through the provider's REST API by the
scenario drivers. N connections on one SQLite store mirror them: a first cycle (the baselines), then a
quiet cycle with nothing changed remotely, each run by the real worker (``Worker.run_pending`` rounds:
leases, the engine, provider slots as configured). Reported per cycle: wall time, runs by status, the
upstream requests the stand-in saw and those each run logged (a quiet run must be exactly one: the
sync-token or delta call, with the access token cached from the baseline).

The stand-ins run in this process (uvicorn on a thread), so they share the GIL and the 2 cores with the
engine: the figures are an upper bound of calbridge's own time.

Run:  .venv/bin/python bench/provider_bench.py [--connections 1000] [--workers 8] [--providers google,microsoft]
                                             [--append-results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the stand-ins and drivers live in tests/

from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import calendars, connections, migrate, users
from bridge.store.db import Store
from bridge.store.models import Connection, SyncRun
from bridge.sync.engine import Engine
from bridge.sync.worker import Worker
from tests.scenarios.driver import Provider, RemoteDriver
from tests.scenarios.ews_driver import ews_provider
from tests.scenarios.google_driver import google_provider
from tests.scenarios.microsoft_driver import microsoft_provider

GOAL_SECONDS = 60.0
PROVIDERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Provider]]] = {
    "google": google_provider,
    "microsoft": microsoft_provider,
    "exchange": ews_provider,
}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def remote_events(n: int, now: datetime) -> list[tuple[str, str]]:
    """A single event and a weekly series whose second instance moved an hour later, in the next weeks."""
    start = (now + timedelta(days=2 + n % 20)).replace(hour=9, minute=0, second=0, microsecond=0)
    moved = start + timedelta(days=7)
    series = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n"
              f"BEGIN:VEVENT\r\nUID:series-{n}@bench\r\nDTSTAMP:{_stamp(now)}\r\nDTSTART:{_stamp(start)}\r\n"
              f"DTEND:{_stamp(start + timedelta(minutes=30))}\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\nSUMMARY:Sprechstunde\r\n"
              f"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:series-{n}@bench\r\nDTSTAMP:{_stamp(now)}\r\n"
              f"RECURRENCE-ID:{_stamp(moved)}\r\nDTSTART:{_stamp(moved + timedelta(hours=1))}\r\n"
              f"DTEND:{_stamp(moved + timedelta(hours=1, minutes=30))}\r\nSUMMARY:Sprechstunde\r\n"
              f"END:VEVENT\r\nEND:VCALENDAR\r\n")
    single_start = start + timedelta(hours=3)
    single = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:single-{n}@bench\r\n"
              f"DTSTAMP:{_stamp(now)}\r\nDTSTART:{_stamp(single_start)}\r\n"
              f"DTEND:{_stamp(single_start + timedelta(hours=1))}\r\nSUMMARY:Termin\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    return [(f"series-{n}@bench", series), (f"single-{n}@bench", single)]


@dataclass
class Cycle:
    seconds: float
    statuses: Counter[str]
    upstream: int  # requests the stand-in saw
    logged: Counter[int]  # requests per run, as the sync log has them -> how many runs


def upstream_requests(provider: Provider) -> int:
    """What the stand-in has answered so far (API calls and token requests)."""
    running = getattr(provider, "running", None)
    if running is not None:  # Google
        return len(running.standin.api_requests) + running.standin.token_requests
    standin = provider.standin  # type: ignore[attr-defined]
    if isinstance(getattr(standin, "requests", None), list):  # EWS: every SOAP request, by mailbox
        return len(standin.requests)
    return int(standin.graph_requests + standin.token_requests)


def run_cycle(store: Store, engine: Engine, provider: Provider, ids: list[int], workers: int) -> Cycle:
    """Make every connection due and let the worker run rounds until each has run once."""
    now = datetime.now(UTC)
    with store.write() as session:
        session.execute(update(Connection).where(Connection.id.in_(ids)).values(next_due_at=now))
        first_run = session.scalar(select(SyncRun.id).order_by(SyncRun.id.desc()).limit(1)) or 0
    worker = Worker(store, lambda connection_id, trigger: engine.run(connection_id, trigger=trigger),
                    concurrency=workers)
    before = upstream_requests(provider)
    started = time.perf_counter()
    ran = 0
    while ran < len(ids):
        done = worker.run_pending()
        if not done:
            raise RuntimeError(f"only {ran} of {len(ids)} connections were claimed")
        ran += done
    seconds = time.perf_counter() - started
    upstream = upstream_requests(provider) - before
    with store.read() as session:
        runs = session.execute(select(SyncRun.status, SyncRun.requests).where(SyncRun.id > first_run)).all()
    return Cycle(seconds, Counter(status for status, _ in runs), upstream, Counter(requests for _, requests in runs))


def connect(store: Store, secrets: Secrets, drivers: list[RemoteDriver], name: str) -> list[int]:
    with store.write() as session:
        tenant = users.create_tenant(session, f"Kette {name}")
        owner = users.create_user(session, tenant, login=f"kette-{name}", email=f"kette-{name}@example.org",
                                  password_hash="-")
        ids = []
        for n, driver in enumerate(drivers):
            account = driver.account()
            calendar = calendars.create_calendar(session, owner, f"raum-{n}", timezone="Europe/Berlin")
            connection = connections.create_connection(session, calendar, account.provider)
            connections.set_account(session, connection, server_url=account.server_url,
                                    remote_calendar=account.remote_calendar,
                                    credentials=secrets.encrypt(json.dumps(dict(account.credentials))))
            ids.append(connection.id)
        return ids


@contextlib.contextmanager
def prepared(name: str, count: int, directory: Path) -> Iterator[tuple[Provider, list[RemoteDriver]]]:
    now = datetime.now(UTC)
    with PROVIDERS[name](directory) as provider, contextlib.ExitStack() as drivers:
        made = []
        for n in range(count):
            driver = drivers.enter_context(provider.new_driver())
            driver.create_many(remote_events(n, now))
            made.append(driver)
            if (n + 1) % 250 == 0:
                print(f"  {name}: {n + 1} calendars written", file=sys.stderr)
        yield provider, made


def bench(name: str, count: int, workers: int, directory: Path) -> tuple[Cycle, Cycle]:
    print(f"{name}: writing {count} remote calendars", file=sys.stderr)
    with prepared(name, count, directory) as (provider, drivers):
        store = Store(f"sqlite:///{directory / 'calbridge.sqlite3'}")
        migrate.upgrade(store)
        secrets = Secrets([new_key()])
        settings = Settings(data_dir=directory, provider_ca_file=drivers[0].account().ca_file or "")
        ids = connect(store, secrets, drivers, name)
        engine = Engine(store, settings, secrets)
        print(f"{name}: first cycle (baselines)", file=sys.stderr)
        first = run_cycle(store, engine, provider, ids, workers)
        print(f"{name}: quiet cycle", file=sys.stderr)
        quiet = run_cycle(store, engine, provider, ids, workers)
        store.dispose()
        return first, quiet


def report(results: dict[str, tuple[Cycle, Cycle]], count: int, workers: int) -> str:
    lines = [f"## Providers (issue 6), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {count} connections per provider",
             "",
             f"`bench/provider_bench.py --connections {count} --workers {workers}` on {platform.machine()}, "
             f"Python {platform.python_version()}, SQLite store, provider_concurrency "
             f"{Settings(data_dir=Path('.')).provider_concurrency} per provider; the stand-ins in the same process.",
             "",
             "| provider | cycle | wall time (s) | runs ok | upstream requests (stand-in) "
             "| requests per run (sync log) "
             f"| goal: quiet cycle < {GOAL_SECONDS:.0f} s, 1 request each |",
             "|---|---|---:|---:|---:|---|---|"]
    for name, (first, quiet) in results.items():
        for label, cycle in (("first (baselines)", first), ("quiet", quiet)):
            spread = ", ".join(f"{requests}: {runs}" for requests, runs in sorted(cycle.logged.items()))
            met = ""
            if cycle is quiet:
                one_each = set(cycle.logged) == {1} and cycle.upstream == count
                met = "met" if one_each and cycle.seconds < GOAL_SECONDS and cycle.statuses == {"ok": count} \
                    else "NOT met"
            lines.append(f"| {name} | {label} | {cycle.seconds:.1f} | {cycle.statuses.get('ok', 0)} "
                         f"| {cycle.upstream} | {spread} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8, help="runs claimed per worker round")
    parser.add_argument("--providers", default="google,microsoft")
    parser.add_argument("--append-results", type=Path)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a client per remote calendar, both ends here
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8 * args.connections + 1024)), hard))
    results = {}
    for name in args.providers.split(","):
        with tempfile.TemporaryDirectory(prefix=f"provider-bench-{name}-") as directory:
            results[name] = bench(name, args.connections, args.workers, Path(directory))
    text = report(results, args.connections, args.workers)
    print(text)
    if args.append_results:
        with args.append_results.open("a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
