#!/usr/bin/env python3
"""Sync benchmark (issue 5): calbridge's sync engine against stock Radicale 3.9 on loopback, beside vdirsyncer.

1. No-change cycle: a connection whose calendar mirrors N remote events (default 1,000, also 100) is
   synced again and again with nothing changed remotely. Per cycle: the upstream requests (the sync log's
   ``requests``, and what the HTTP transport saw) and the local work, i.e. the wall time of ``Engine.run``
   minus the time the adapter's HTTP transport spent sending requests and reading answers. The same with
   one HTTP client reused across runs, and a cProfile of the cycle and of an initial import of the same events.
2. Initial import: 5,000 remote events into an empty calendar by one ``Engine.run`` (a baseline), and
   the same Radicale collection into an empty vdirsyncer filesystem storage by ``vdirsyncer sync``
   (vdirsyncer installed into a throwaway venv by this script); wall time and upstream requests, counted
   for both from Radicale's request log. Then no-change syncs of each on what it imported, and no-change
   cycles (as in 1.) of calbridge's imported calendar, to show how the cycle grows with the calendar.

Run:  .venv/bin/python bench/sync_bench.py [--cycles 200] [--cycle-events 100,1000] [--import-events 5000]
                                         [--append-results bench/RESULTS.md]

The report (Markdown) goes to stdout, progress to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import gc
import json
import math
import os
import platform
import pstats
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bridge import adapters
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import calendars, connections, migrate, users
from bridge.store.db import Store
from bridge.store.models import Item, SyncRun
from bridge.sync.engine import Engine

try:  # `python bench/sync_bench.py` puts bench/ on the path, `python -m bench.sync_bench` the repo root
    import caldav_bench as cb
except ImportError:
    from bench import caldav_bench as cb

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)  # the engine's clock: fixes the sync window
FIRST_MONDAY = dt.date(2026, 11, 30)
MAX_WEEKS = 60  # events start within 60 weeks from FIRST_MONDAY: inside the default window (-30 d, +548 d)
LOCAL_GOAL_MS = 5.0
GOAL_EVENTS = 1000
USER_AGENT_WARMUP = "sync-bench-warmup"
RE_REQUEST = re.compile(r"\b([A-Z]+) request for '([^']*)'.*? using '([^']*)'")
RE_ANSWER = re.compile(r"\b[A-Z]+ response status for '[^']*'.*? in ([0-9.]+) seconds(?:\s+\S*\s+(\d+) bytes)?")


# --------------------------------------------------------------------------------------------
# Data and the external side
# --------------------------------------------------------------------------------------------

def make_remote(n: int, seed: int) -> cb.Dataset:
    """caldav_bench's events (same mix of zones, series, attendees, alarms), spread over at most
    MAX_WEEKS weeks from FIRST_MONDAY so every one lies in a new connection's sync window."""
    weeks = min(MAX_WEEKS, max(1, math.ceil(n / cb.EVENTS_PER_WEEK)))
    rng = random.Random(seed)
    events = [cb.make_event(rng, FIRST_MONDAY, i * weeks // n, i % cb.SERIES_EVERY == cb.SERIES_EVERY // 2)
              for i in range(n)]
    return cb.Dataset(n, seed, weeks, FIRST_MONDAY, events, [e.render() for e in events], [], [])


@dataclass(frozen=True)
class Served:
    """What Radicale's log says about one client's requests after a mark."""

    requests: Counter[str]  # by method
    seconds: float  # Radicale's own time answering them
    size: int  # answer bodies as sent (gzip where the client accepts it)

    @property
    def count(self) -> int:
        return sum(self.requests.values())

    def __add__(self, other: Served) -> Served:
        return Served(self.requests + other.requests, self.seconds + other.seconds, self.size + other.size)


@dataclass
class Radicale:
    base_url: str
    server: cb.ServerProcess

    def url(self, slug: str) -> str:
        return f"{self.base_url}/{cb.USER}/{slug}/"

    def mark(self) -> int:
        """Where the request log ends now; :meth:`served_since` reads from there."""
        return self.server.log_path.stat().st_size

    def served_since(self, mark: int, agent: str) -> Served:
        """Requests logged after ``mark`` whose User-Agent contains ``agent``, and the time and bytes of all
        answers logged after it (one client at a time talks to the server while this is used)."""
        time.sleep(0.2)  # let the last line land
        with open(self.server.log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", errors="replace")
        answers = RE_ANSWER.findall(text)
        return Served(Counter(m.group(1) for m in RE_REQUEST.finditer(text) if agent in m.group(3)),
                      sum(float(sec) for sec, _ in answers), sum(int(size or 0) for _, size in answers))


def start_radicale(workdir: Path, collections: dict[str, cb.Dataset], python: str) -> Radicale:
    """Stock Radicale (caldav_bench's settings, but logging at info: one line per request, which is
    how requests are counted) serving each dataset as /bench/<slug>/, written as files before start."""
    root = workdir / "radicale"
    for slug, ds in collections.items():
        cb.write_radicale_collection(root / "collections" / "collection-root" / cb.USER / slug, ds,
                                     displayname=slug)
    (root / "users").write_text(f"{cb.USER}:{cb.PASSWORD}\n", encoding="utf-8")
    port = cb.free_port()
    config = root / "config"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {root / 'users'}\nhtpasswd_encryption = plain\n"
        "[rights]\ntype = owner_only\n"
        f"[storage]\ntype = multifilesystem\nfilesystem_folder = {root / 'collections'}\n"
        "[web]\ntype = none\n"
        "[logging]\nlevel = info\n", encoding="utf-8")
    env = dict(os.environ)
    env.pop("RADICALE_CONFIG", None)
    server = cb.ServerProcess("radicale", [python, "-m", "radicale", "--config", str(config)], env, root,
                              root / "server.log")
    base = f"http://127.0.0.1:{port}"
    cb.start_ready(server, base + "/", 60, want_200=False)
    return Radicale(base, server)


def warm_up(radicale: Radicale, slug: str, n: int) -> float:
    """Every kind of request either client sends, once, untimed: Radicale builds its item cache (about
    5 ms an item) and its sync history on the first request that needs them, and neither client
    should pay for that. Returns the seconds it took."""
    cal = f"/{cb.USER}/{slug}/"
    xml = {"Content-Type": "application/xml; charset=utf-8"}
    window = (NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=548))
    query = (f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {cb.CALDAV_NS}>'
             "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
             '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
             f'<C:time-range start="{cb.fmt_utc(window[0])}" end="{cb.fmt_utc(window[1])}"/>'
             "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>").encode()
    head = b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
    props = head + b"<D:prop><D:sync-token/><CS:getctag/><D:supported-report-set/></D:prop></D:propfind>"
    etags = head + b"<D:prop><D:getetag/></D:prop></D:propfind>"
    t0 = time.perf_counter()
    with httpx.Client(base_url=radicale.base_url, auth=(cb.USER, cb.PASSWORD), timeout=None,
                      headers={"User-Agent": USER_AGENT_WARMUP}) as client:
        for method, body, depth in (("PROPFIND", props, "0"), ("REPORT", query, "1"), ("PROPFIND", etags, "1")):
            r = client.request(method, cal, content=body, headers={**xml, "Depth": depth})
            cb.expect(r, (207,), f"warm-up {method}")
        r = cb.report_sync(client, cal, "")
        cb.expect(r, (207,), "warm-up sync-collection")
        listed = len(cb.RE_RESPONSE.findall(r.content))
    if listed != n:
        cb.log(f"  warning: /{cb.USER}/{slug}/ lists {listed} items, expected {n}")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# calbridge in process
# --------------------------------------------------------------------------------------------

class Meter:
    """Time and count of every request an httpx transport sends while :func:`metering` is on, and the
    time spent in Python's cyclic garbage collector meanwhile."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.requests = 0
        self.gc_seconds = 0.0
        self._gc_start = 0.0

    def reset(self) -> None:
        self.seconds, self.requests, self.gc_seconds = 0.0, 0, 0.0

    def on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_start


@contextlib.contextmanager
def metering(meter: Meter) -> Iterator[None]:
    """Wrap ``httpx.HTTPTransport.handle_request``, the wire end of the adapter's client, so the engine
    runs with its real opener (``bridge.adapters.open_adapter``). Each answer is read whole inside the
    wrapper (raw bytes; decoding stays the client's), so the metered time is sending the request and
    waiting for and reading the answer, i.e. the time spent on the upstream."""
    original = httpx.HTTPTransport.handle_request

    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        t0 = time.perf_counter()
        response = original(self, request)
        try:
            raw = b"".join(response.stream)  # type: ignore[arg-type]
        finally:
            response.close()
        meter.seconds += time.perf_counter() - t0
        meter.requests += 1
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(raw),
                              extensions=response.extensions)

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    gc.callbacks.append(meter.on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(meter.on_gc)
        httpx.HTTPTransport.handle_request = original  # type: ignore[method-assign]


@contextlib.contextmanager
def reused_client_opener() -> Iterator[Callable]:
    """An opener like ``adapters.open_adapter`` whose adapters share one long-lived client (what a worker
    could keep), to tell the engine's own work from building an ``httpx.Client`` on every run."""
    with httpx.Client(timeout=adapters.TIMEOUT, headers={"User-Agent": "calbridge"}) as client:

        @contextlib.contextmanager
        def open_adapter(account: adapters.Account) -> Iterator[adapters.Adapter]:
            adapter = adapters.BUILDERS[account.provider](account, client)
            try:
                yield adapter
            finally:
                adapter.close()

        yield open_adapter


@dataclass
class Calbridge:
    store: Store
    secrets: Secrets
    settings: Settings
    count: int = 0

    def engine(self, open_adapter: Callable | None = None) -> Engine:
        kwargs = {"open_adapter": open_adapter} if open_adapter is not None else {}
        return Engine(self.store, self.settings, self.secrets, clock=lambda: NOW, **kwargs)

    def connect(self, remote_base: str, remote_url: str) -> tuple[int, int]:
        """A tenant, user, calendar and CalDAV connection to ``remote_url``: (calendar id, connection id)."""
        self.count += 1
        with self.store.write() as session:
            tenant = users.create_tenant(session, f"Sync bench {self.count}")
            owner = users.create_user(session, tenant, login=f"sync-bench-{self.count}",
                                      email=f"sync-bench-{self.count}@example.com", password_hash="-")
            calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
            connection = connections.create_connection(session, calendar, "caldav")
            credentials = self.secrets.encrypt(json.dumps({"username": cb.USER, "password": cb.PASSWORD}))
            connections.set_account(session, connection, server_url=remote_base, remote_calendar=remote_url,
                                    credentials=credentials)
            return calendar.id, connection.id

    def items(self, calendar_id: int) -> int:
        with self.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(Item)
                                      .where(Item.calendar_id == calendar_id)) or 0)

    def run_rows(self, connection_id: int) -> list[SyncRun]:
        with self.store.read() as session:
            return list(session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id)
                                        .order_by(SyncRun.id)))


def open_calbridge(workdir: Path) -> Calbridge:
    data = workdir / "calbridge"
    data.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{data / 'calbridge.sqlite3'}")
    migrate.upgrade(store)
    return Calbridge(store, Secrets([new_key()]), Settings(data_dir=data))


@dataclass
class Cycles:
    """The no-change cycles of one connection (times in ms)."""

    label: str
    events: int
    total: list[float] = field(default_factory=list)
    upstream: list[float] = field(default_factory=list)
    gc: list[float] = field(default_factory=list)  # of the local work: Python's cyclic garbage collector
    requests: list[int] = field(default_factory=list)  # from the transport
    logged: list[int] = field(default_factory=list)  # sync_run.requests
    statuses: Counter[str] = field(default_factory=Counter)
    changed_runs: int = 0  # runs whose counts show anything but fetched=0 / remote_deleted=0

    @property
    def local(self) -> list[float]:
        return [t - u for t, u in zip(self.total, self.upstream, strict=True)]


def stats(values: list[float]) -> cb.OpResult:
    return cb.OpResult(samples=list(values))


def run_cycles(bridge: Calbridge, connection_id: int, cycles: int, warmup: int, label: str, events: int,
               open_adapter: Callable | None = None) -> Cycles:
    engine = bridge.engine(open_adapter)
    meter = Meter()
    out = Cycles(label, events)
    first_run = len(bridge.run_rows(connection_id))
    with metering(meter):
        for i in range(warmup + cycles):
            meter.reset()
            t0 = time.perf_counter()
            outcome = engine.run(connection_id)
            total = time.perf_counter() - t0
            if i < warmup:
                continue
            out.total.append(total * 1000)
            out.upstream.append(meter.seconds * 1000)
            out.gc.append(meter.gc_seconds * 1000)
            out.requests.append(meter.requests)
            out.statuses[outcome.status] += 1
    for row in bridge.run_rows(connection_id)[first_run + warmup:]:
        out.logged.append(row.requests)
        if json.loads(row.counts) != {"fetched": 0, "remote_deleted": 0}:
            out.changed_runs += 1
    return out


def profiled(runs: int, run: Callable[[], object]) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        run()
    profiler.disable()
    return pstats.Stats(profiler, stream=sys.stderr)


@dataclass
class Import:
    """One initial import (calbridge or vdirsyncer) or one no-change sync after it."""

    tool: str
    what: str
    seconds: list[float] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    note: str = ""
    error: str | None = None

    def add(self, seconds: float, served: Served, stored: int | None = None) -> None:
        self.seconds.append(seconds)
        self.served.append(served)
        if stored is not None:
            self.stored.append(stored)


def calbridge_run(bridge: Calbridge, radicale: Radicale, connection_id: int, trigger: str) -> tuple[float, Served]:
    """One ``Engine.run``: (seconds, what Radicale served it); raises cb.OpError unless it ends ok."""
    engine = bridge.engine()
    mark = radicale.mark()
    t0 = time.perf_counter()
    outcome = engine.run(connection_id, trigger=trigger)
    seconds = time.perf_counter() - t0
    if outcome.status != "ok":
        raise cb.OpError(f"calbridge run ended {outcome.status} ({outcome.error_class})")
    served = radicale.served_since(mark, "calbridge")
    logged = bridge.run_rows(connection_id)[-1].requests
    if logged != served.count:
        raise cb.OpError(f"the sync log says {logged} requests, Radicale's log {served.count}")
    return seconds, served


# --------------------------------------------------------------------------------------------
# vdirsyncer
# --------------------------------------------------------------------------------------------

@dataclass
class Vdirsyncer:
    exe: Path
    version: str
    start_s: float  # `vdirsyncer --version`, median of 3: interpreter start and imports


def install_vdirsyncer(venv: Path, spec: str) -> Vdirsyncer:
    """vdirsyncer in its own throwaway venv (reused when it is there already); raises cb.StartError."""
    exe = venv / "bin" / "vdirsyncer"
    if not exe.exists():
        python3 = shutil.which("python3") or sys.executable
        cb.log(f"installing {spec} into {venv}")
        for cmd in ([python3, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", spec]):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise cb.StartError(f"`{' '.join(cmd)}` failed: {e}") from e
            if p.returncode != 0:
                raise cb.StartError(f"`{' '.join(cmd[-3:])}` exited with rc {p.returncode}: "
                                    f"{(p.stderr or p.stdout).strip()[-300:]}")
    starts, version = [], ""
    for _ in range(3):
        t0 = time.perf_counter()
        p = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
        starts.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise cb.StartError(f"`vdirsyncer --version` exited with rc {p.returncode}: {p.stderr.strip()[-300:]}")
        version = p.stdout.strip().rsplit(" ", 1)[-1]
    return Vdirsyncer(exe, version, sorted(starts)[1])


def vdirsyncer_config(root: Path, remote_url: str) -> Path:
    """Radicale's collection (storage caldav, no date range: every item) into an empty filesystem
    storage; ``collections = null``: the URL and the path are the collections themselves."""
    (root / "local").mkdir(parents=True)
    config = root / "config"
    config.write_text(
        "[general]\n"
        f'status_path = "{root / "status"}/"\n\n'
        "[pair bench]\n"
        'a = "bench_remote"\nb = "bench_local"\ncollections = null\n\n'
        "[storage bench_remote]\n"
        f'type = "caldav"\nurl = "{remote_url}"\nusername = "{cb.USER}"\npassword = "{cb.PASSWORD}"\n\n'
        "[storage bench_local]\n"
        f'type = "filesystem"\npath = "{root / "local"}/"\nfileext = ".ics"\n', encoding="utf-8")
    return config


def vdirsyncer_run(vdir: Vdirsyncer, config: Path, command: str, log_path: Path) -> float:
    with open(log_path, "ab") as logf:
        t0 = time.perf_counter()
        p = subprocess.run([str(vdir.exe), "-c", str(config), command], stdin=subprocess.DEVNULL, stdout=logf,
                           stderr=subprocess.STDOUT, timeout=1800)
        seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise cb.OpError(f"`vdirsyncer {command}` exited with rc {p.returncode}: {cb.tail(log_path, 5)}")
    return seconds


def vdirsyncer_served(vdir: Vdirsyncer, radicale: Radicale, config: Path, command: str) -> tuple[float, Served]:
    mark = radicale.mark()
    seconds = vdirsyncer_run(vdir, config, command, config.parent / "vdirsyncer.log")
    return seconds, radicale.served_since(mark, "vdirsyncer")


def stored_files(config: Path) -> int:
    return sum(1 for f in (config.parent / "local").iterdir() if f.suffix == ".ics")


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def fmt_s(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def median(values: list[float]) -> float | None:
    return stats(values).median


def fmt_requests(counts: Counter[str]) -> str:
    return ", ".join(f"{m} {c}" for m, c in sorted(counts.items())) or "none"


def fmt_served(served: list[Served]) -> str:
    """``2: PROPFIND 1, REPORT 1`` when every run sent the same, the variants otherwise."""
    kinds = sorted({(s.count, fmt_requests(s.requests)) for s in served})
    return " / ".join(f"{count}: {text}" for count, text in kinds) or "–"


def cycle_rows(all_cycles: list[Cycles]) -> list[str]:
    out = ["| connection | requests per cycle | local work median ms | local p95 ms | of it GC, mean ms "
           "| upstream median ms | Engine.run median ms | Engine.run p95 ms | cycles | status |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in all_cycles:
        local, total, up = stats(c.local), stats(c.total), stats(c.upstream)
        reqs = Counter(c.logged)
        req_text = "/".join(f"{k}" for k in sorted(reqs)) + ("" if len(reqs) == 1 else " (varies)")
        agree = "" if sorted(c.logged) == sorted(c.requests) else " (transport counted otherwise)"
        status = ", ".join(f"{s} {n}" for s, n in sorted(c.statuses.items()))
        if c.changed_runs:
            status += f"; {c.changed_runs} runs saw changes"
        gc_mean = sum(c.gc) / len(c.gc) if c.gc else None
        out.append(f"| {c.label} | {req_text}{agree} | {cb.fmt_ms(local.median)} | {cb.fmt_ms(local.p95)} | "
                   f"{cb.fmt_ms(gc_mean)} | {cb.fmt_ms(up.median)} | {cb.fmt_ms(total.median)} | "
                   f"{cb.fmt_ms(total.p95)} | {len(c.total)} | {status} |")
    return out


def import_rows(imports: list[Import]) -> list[str]:
    out = ["| tool | what | median s | runs s | Radicale's time s (median) | answers MB (median) "
           "| upstream requests | stored |",
           "|---|---|---:|---|---:|---:|---|---:|"]
    for r in imports:
        if r.error or not r.seconds:
            out.append(f"| {r.tool} | {r.what} | {r.error or 'not measured'} | | | | | |")
            continue
        stored = "/".join(str(s) for s in sorted(set(r.stored))) or "–"
        server_s = median([s.seconds for s in r.served])
        size = median([s.size / 1e6 for s in r.served])
        out.append(f"| {r.tool} | {r.what}{r.note} | {fmt_s(median(r.seconds))} | "
                   f"{', '.join(fmt_s(s) for s in r.seconds)} | {fmt_s(server_s)} | "
                   f"{'–' if size is None else f'{size:.2f}'} | {fmt_served(r.served)} | {stored} |")
    return out


def ratio_lines(imports: dict[str, Import]) -> list[str]:
    lines = []
    pairs = (("initial import", "cb_import", "vd_sync"),
             ("initial import, vdirsyncer with discover and process start", "cb_import", "vd_total"),
             ("no-change sync of the imported calendar", "cb_quiet", "vd_quiet"))
    for title, a, b in pairs:
        ra, rb = imports.get(a), imports.get(b)
        if ra is None or rb is None or ra.error or rb.error or not ra.seconds or not rb.seconds:
            lines.append(f"- {title}: not measured")
            continue
        ta, tb = median(ra.seconds), median(rb.seconds)
        qa, qb = ra.served[-1].count, rb.served[-1].count
        lines.append(f"- {title}: time {cb.fmt_ratio(ta, tb)} ({fmt_s(ta)} s / {fmt_s(tb)} s), "
                     f"requests {cb.fmt_ratio(qa, qb)} ({qa} / {qb})")
    return lines


def goal_lines(all_cycles: list[Cycles]) -> list[str]:
    goal = next((c for c in all_cycles if c.events == GOAL_EVENTS and "reused" not in c.label), None)
    if goal is None or not goal.total:
        return [f"- no-change cycle at {GOAL_EVENTS:,} events: not measured"]
    one = sum(1 for r in goal.logged if r == 1)
    local = stats(goal.local).median or 0.0
    return [f"- no-change cycle, {GOAL_EVENTS:,} mirrored events, exactly 1 upstream request: {one}/{len(goal.logged)} "
            f"cycles {'PASS' if one == len(goal.logged) == len(goal.total) else 'FAIL'}",
            f"- no-change cycle, {GOAL_EVENTS:,} mirrored events, local work < {LOCAL_GOAL_MS:g} ms: median "
            f"{cb.fmt_ms(local)} ms (p95 {cb.fmt_ms(stats(goal.local).p95)} ms) "
            f"{'PASS' if local < LOCAL_GOAL_MS else 'FAIL'}"]


CYCLE_PHASES = [
    ("bridge/sync/engine.py", "run"), ("bridge/sync/engine.py", "_start"), ("bridge/secrets.py", "decrypt"),
    ("bridge/adapters/__init__.py", "open_adapter"), ("httpx/_client.py", "__init__"),
    ("ssl.py", "create_default_context"), ("bridge/sync/engine.py", "_sync"), ("bridge/adapters/caldav.py", "fetch"),
    ("httpx/_transports/default.py", "handle_request"), ("bridge/adapters/caldav.py", "_parse"),
    ("bridge/sync/engine.py", "_plan"), ("bridge/store/mappings.py", "of_connection"),
    ("bridge/sync/engine.py", "_local_items"), ("bridge/sync/plan.py", "plan"), ("bridge/sync/apply.py", "run"),
    ("bridge/sync/engine.py", "_save_state"), ("bridge/sync/engine.py", "_finish"),
    ("sqlalchemy/orm/session.py", "commit"), ("sqlalchemy/orm/session.py", "execute"),
]
IMPORT_PHASES = [
    ("bridge/sync/engine.py", "run"), ("bridge/adapters/caldav.py", "fetch"),
    ("httpx/_transports/default.py", "handle_request"), ("bridge/adapters/caldav.py", "_calendar_data"),
    ("bridge/sync/engine.py", "_plan"), ("bridge/sync/engine.py", "_version"), ("bridge/expand.py", "span"),
    ("bridge/sync/content.py", "content_hash"), ("bridge/sync/apply.py", "run"), ("bridge/sync/apply.py", "_mirror"),
    ("bridge/sync/mirror.py", "store_remote"), ("bridge/sync/mirror.py", "options_for"),
    ("bridge/rules/ingest.py", "ingest"), ("bridge/sync/mirror.py", "_write"),
    ("icalendar/cal/component.py", "to_ical"), ("bridge/store/objects.py", "parse_object"),
    ("bridge/store/index.py", "facts_of"), ("bridge/store/items.py", "put"), ("bridge/store/mappings.py", "save"),
    ("bridge/store/changes.py", "prune_now_and_then"), ("icalendar/cal/component.py", "from_ical"),
    ("sqlalchemy/orm/session.py", "commit"), ("sqlalchemy/orm/session.py", "execute"),
]


def profile_lines(profile: pstats.Stats, runs: int, what: str, phases: list[tuple[str, str]],
                  top: int) -> list[str]:
    """Two tables: chosen functions (cumulative ms per run) and the functions with most own time."""
    entries = profile.stats  # type: ignore[attr-defined]

    def where(key: tuple[str, int, str]) -> str:
        filename, line, name = key
        for marker in ("/site-packages/", str(cb.REPO_ROOT) + "/"):
            if marker in filename:
                filename = filename.split(marker, 1)[1]
                break
        else:
            filename = re.sub(r".*/lib/python3\.\d+/", "", filename)
        return f"`{filename}:{line} {name}`" if line else f"`{name}`"

    total = sum(tt for _, _, tt, _, _ in entries.values()) * 1000 / runs
    out = [f"cProfile of {what}; the profiler slows Python code down, so the times are larger than unprofiled "
           f"ones: {total:.1f} ms of profiled time per run.", "",
           "| function | calls per run | cumulative ms per run |", "|---|---:|---:|"]
    for suffix, name in phases:
        found = [(k, v) for k, v in entries.items() if k[0].endswith(suffix) and k[2] == name]
        if not found:
            continue
        key, (_, nc, _, ct, _) = max(found, key=lambda kv: kv[1][3])  # the outermost of same-named ones
        out.append(f"| {where(key)} | {nc / runs:.4g} | {ct * 1000 / runs:.2f} |")
    out += ["", f"Top {top} by own time:", "",
            "| function | calls per run | own ms per run | cumulative ms per run |", "|---|---:|---:|---:|"]
    for key, (_, nc, tt, ct, _) in sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]:
        out.append(f"| {where(key)} | {nc / runs:.4g} | {tt * 1000 / runs:.3f} | {ct * 1000 / runs:.2f} |")
    return out


def render_report(all_cycles: list[Cycles], imports: dict[str, Import], profile: list[str], meta: dict[str, str],
                  failures: list[str]) -> str:
    out = [f"## Sync engine (issue 5), run of {meta['date']}", ""]
    out += [f"- {k}: {v}" for k, v in meta.items() if k != "date"]
    out += ["", "### No-change cycle", "",
            "One `Engine.run` of a connection after its initial sync, nothing changed remotely (Radicale answers "
            "the sync-collection REPORT with no changes). Requests: the sync log's `requests` of each run "
            "(the metered transport counted the same unless noted). Local work = wall time of `Engine.run` "
            "minus the time the adapter's HTTP transport spent sending the request and reading the answer.", ""]
    out += cycle_rows(all_cycles)
    out += ["", "### Initial import and a no-change sync, calbridge and vdirsyncer", "",
            "Wall time client side; upstream requests counted from Radicale's request log (by User-Agent), "
            "by method. calbridge: one `Engine.run` (a baseline) in this process into a new, empty calendar "
            "(SQLite); vdirsyncer: `vdirsyncer sync` as a process into an empty filesystem storage, after "
            "`vdirsyncer discover`.", ""]
    out += import_rows(list(imports.values()))
    out += ["", "Ratios calbridge / vdirsyncer (< 1: calbridge faster or fewer requests):", ""]
    out += ratio_lines(imports)
    out += ["", "### Goals", ""] + goal_lines(all_cycles)
    if failures:
        out += ["", "### Failures", ""] + [f"- {f}" for f in failures]
    if profile:
        out += ["", "### Profiles", ""] + profile
    return "\n".join(out) + "\n"


def code_facts() -> str:
    """The commit measured, and which files under bridge/ differ from it (others may be editing)."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=cb.REPO_ROOT, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    head = git("log", "-1", "--format=%h (%s)").strip() or "?"
    dirty = git("status", "--porcelain", "--", "bridge").splitlines()
    return f"commit {head}" + (f"; uncommitted in bridge/: {', '.join(line[3:] for line in dirty)}" if dirty else "")


def machine_facts() -> str:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cores = run(["nproc"]).strip() or str(os.cpu_count())
    mem = next((line.split()[1] for line in run(["free", "-g"]).splitlines() if line.startswith("Mem:")), "?")
    return f"{platform.machine()}, nproc {cores}, `free -g` total {mem} GiB, Python {platform.python_version()}"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycle-events", default="100,1000",
                   help="mirrored events of the no-change connections, comma-separated (default 100,1000; the "
                        "goal is judged at 1000)")
    p.add_argument("--cycles", type=int, default=200, help="timed no-change cycles per connection (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed cycles before timing (default 10)")
    p.add_argument("--profile-cycles", type=int, default=100,
                   help="cycles at 1000 events run under cProfile; 0: no profile (default 100)")
    p.add_argument("--no-profile-import", dest="profile_import", action="store_false",
                   help="skip the cProfile of an initial import of the 1000 events")
    p.add_argument("--profile-top", type=int, default=15, help="functions listed by own time (default 15)")
    p.add_argument("--import-events", type=int, default=5000, help="remote events of the initial import (default 5000)")
    p.add_argument("--import-reps", type=int, default=3,
                   help="initial imports per tool, alternating, each into a new empty calendar / folder (default 3)")
    p.add_argument("--quiet-reps", type=int, default=3,
                   help="no-change syncs per tool after the imports, for the comparison (default 3)")
    p.add_argument("--import-cycles", type=int, default=50,
                   help="no-change cycles (as in part 1) of the last imported calendar; 0: none (default 50)")
    p.add_argument("--no-import", action="store_true", help="measure the no-change cycles only")
    p.add_argument("--no-vdirsyncer", action="store_true", help="measure calbridge only")
    p.add_argument("--vdirsyncer-venv", default=os.path.join(tempfile.gettempdir(), "calbridge-bench-vdirsyncer"),
                   help="throwaway venv for vdirsyncer, created (python3 -m venv, pip install) when missing "
                        "(default: <tmp>/calbridge-bench-vdirsyncer)")
    p.add_argument("--vdirsyncer-spec", default="vdirsyncer", help="what pip installs (default: vdirsyncer)")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--python", default=sys.executable, help="interpreter that runs Radicale")
    p.add_argument("--workdir", default=None, help="parent for the temp dir (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--append-results", default=None, metavar="FILE",
                   help="also append the report (a section) to FILE, e.g. bench/RESULTS.md")
    args = p.parse_args(argv)
    args.cycle_ns = [int(x.replace("_", "")) for x in args.cycle_events.split(",") if x.strip()]
    if args.cycles < 1 or any(n < 1 for n in args.cycle_ns) or args.import_events < 1 or args.import_reps < 1:
        p.error("cycles, event counts and reps must be at least 1")
    return args


def measure_cycles(bridge: Calbridge, radicale: Radicale, args: argparse.Namespace,
                   ) -> tuple[list[Cycles], list[str], list[str]]:
    results: list[Cycles] = []
    failures: list[str] = []
    profile: list[str] = []
    for n in args.cycle_ns:
        slug = f"cycle{n}"
        warm_s = warm_up(radicale, slug, n)
        _, connection_id = bridge.connect(radicale.base_url, radicale.url(slug))
        t0 = time.perf_counter()
        first = bridge.engine().run(connection_id, trigger="manual")
        cb.log(f"  {n} events: Radicale warm-up {warm_s:.1f}s, initial sync {first.status} in "
               f"{time.perf_counter() - t0:.1f}s")
        if first.status != "ok":
            failures.append(f"initial sync of the {n}-event connection ended {first.status} ({first.error_class})")
            continue
        c = run_cycles(bridge, connection_id, args.cycles, args.warmup, f"{n:,} events", n)
        results.append(c)
        cb.log(f"  {n} events: local work median {cb.fmt_ms(stats(c.local).median)} ms, p95 "
               f"{cb.fmt_ms(stats(c.local).p95)} ms; Engine.run median {cb.fmt_ms(stats(c.total).median)} ms; "
               f"requests {sorted(Counter(c.logged).items())}")
        with reused_client_opener() as opener:
            c = run_cycles(bridge, connection_id, args.cycles, args.warmup,
                           f"{n:,} events, one httpx client reused across runs", n, opener)
        results.append(c)
        cb.log(f"  {n} events, reused client: local work median {cb.fmt_ms(stats(c.local).median)} ms")
        if n == GOAL_EVENTS:
            if args.profile_cycles:
                found = profiled(args.profile_cycles, functools.partial(bridge.engine().run, connection_id))
                profile += ["#### No-change cycle", ""]
                profile += profile_lines(found, args.profile_cycles, f"{args.profile_cycles} no-change cycles at "
                                         f"{n:,} mirrored events", CYCLE_PHASES, args.profile_top)
                found.sort_stats("cumulative").print_stats(40)  # the raw profile, to the log
            if args.profile_import:
                _, other = bridge.connect(radicale.base_url, radicale.url(slug))
                found = profiled(1, functools.partial(bridge.engine().run, other, trigger="manual"))
                profile += ["", "#### Initial import", ""]
                profile += profile_lines(found, 1, f"one initial import of the same {n:,} events into a new "
                                         "calendar", IMPORT_PHASES, args.profile_top)
                found.sort_stats("cumulative").print_stats(40)
    return results, failures, profile


def measure_imports(bridge: Calbridge, radicale: Radicale, args: argparse.Namespace, workdir: Path,
                    vdir: Vdirsyncer | None, vdir_error: str | None,
                    ) -> tuple[dict[str, Import], list[str], list[Cycles]]:
    """The initial imports, alternating calbridge and vdirsyncer, each into a new empty calendar or folder;
    then no-change syncs of what each imported last, and no-change cycles of calbridge's at this size."""
    n = args.import_events
    imports = {"cb_import": Import("calbridge", f"initial import of {n:,} events, `Engine.run`"),
               "vd_sync": Import("vdirsyncer", f"initial import of {n:,} events, `vdirsyncer sync`"),
               "vd_discover": Import("vdirsyncer", "`vdirsyncer discover` before it"),
               "vd_total": Import("vdirsyncer", "discover + sync, end to end"),
               "cb_quiet": Import("calbridge", f"no-change sync of the {n:,} imported, `Engine.run`"),
               "vd_quiet": Import("vdirsyncer", f"no-change sync of the {n:,} imported, `vdirsyncer sync`")}
    vd_keys = ("vd_sync", "vd_discover", "vd_total", "vd_quiet")
    failures: list[str] = []
    cycles: list[Cycles] = []
    warm_s = warm_up(radicale, "import", n)
    cb.log(f"  Radicale warm-up of /{cb.USER}/import/ ({n} events): {warm_s:.1f}s")
    if vdir is None:
        for key in vd_keys:
            imports[key].error = vdir_error or "not run"
    else:
        imports["vd_total"].note = f" (process start alone, `vdirsyncer --version`: {vdir.start_s:.2f} s)"
    connection_id: int | None = None
    config: Path | None = None
    for rep in range(args.import_reps):
        try:
            calendar_id, connection_id = bridge.connect(radicale.base_url, radicale.url("import"))
            seconds, served = calbridge_run(bridge, radicale, connection_id, "manual")
            imports["cb_import"].add(seconds, served, bridge.items(calendar_id))
            cb.log(f"  import {rep + 1}: calbridge {seconds:.1f}s ({fmt_requests(served.requests)}, Radicale "
                   f"{served.seconds:.1f}s), {imports['cb_import'].stored[-1]} items")
        except (cb.OpError, httpx.HTTPError) as e:
            imports["cb_import"].error = f"failed: {str(e)[:150]}"
            failures.append(f"calbridge import: {e}")
            connection_id = None
        if vdir is None:
            continue
        try:
            config = vdirsyncer_config(workdir / f"vdirsyncer-{rep + 1}", radicale.url("import"))
            d_s, d_served = vdirsyncer_served(vdir, radicale, config, "discover")
            s_s, s_served = vdirsyncer_served(vdir, radicale, config, "sync")
            files = stored_files(config)
            imports["vd_sync"].add(s_s, s_served, files)
            imports["vd_discover"].add(d_s, d_served)
            imports["vd_total"].add(s_s + d_s, s_served + d_served, files)
            cb.log(f"  import {rep + 1}: vdirsyncer sync {s_s:.1f}s ({fmt_requests(s_served.requests)}, Radicale "
                   f"{s_served.seconds:.1f}s), discover {d_s:.1f}s ({fmt_requests(d_served.requests)}), {files} files")
        except (cb.OpError, OSError, subprocess.TimeoutExpired) as e:
            for key in vd_keys:
                imports[key].error = f"failed: {str(e).splitlines()[0][:150]}"
            failures.append(f"vdirsyncer import: {e}")
            vdir = config = None
    try:
        for _ in range(args.quiet_reps):
            if connection_id is not None:
                imports["cb_quiet"].add(*calbridge_run(bridge, radicale, connection_id, "schedule"))
            if vdir is not None and config is not None:
                imports["vd_quiet"].add(*vdirsyncer_served(vdir, radicale, config, "sync"))
    except (cb.OpError, OSError, subprocess.TimeoutExpired, httpx.HTTPError) as e:
        failures.append(f"no-change sync after the import: {e}")
    if connection_id is not None and args.import_cycles:
        c = run_cycles(bridge, connection_id, args.import_cycles, 3, f"{n:,} events (the last import)", n)
        cycles.append(c)
        cb.log(f"  {n} events: local work median {cb.fmt_ms(stats(c.local).median)} ms, upstream median "
               f"{cb.fmt_ms(stats(c.upstream).median)} ms")
    return imports, failures, cycles


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        import radicale as radicale_module
        radicale_version = radicale_module.VERSION
    except ImportError:
        radicale_version = "?"
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "`" + " ".join([".venv/bin/python bench/sync_bench.py", *(sys.argv[1:] if argv is None else argv)])
                   + "`",
        "code": code_facts(),
        "machine": machine_facts(),
        "radicale": f"{radicale_version}, storage multifilesystem, default settings, logging info (the request "
                    "count), warmed up before anything is timed",
        "calbridge": "sync engine in this process, SQLite (the embedded default) in a fresh file, provider caldav, "
                     "default options and window (30 days back, 548 ahead), clock fixed at "
                     f"{NOW:%Y-%m-%d %H:%M} UTC",
        "data": f"caldav_bench's events, N of them over min({MAX_WEEKS}, N/{cb.EVENTS_PER_WEEK}) weeks from "
                f"{FIRST_MONDAY:%Y-%m-%d} (so all in the window); 2% weekly series COUNT={cb.SERIES_COUNT}, "
                f"{int(cb.UTC_SHARE * 100)}% of single events in UTC, rest TZID=Europe/Berlin); seed {args.seed}",
        "cycles": f"{args.cycles} timed (+{args.warmup} warm-up) per connection",
    }
    datasets = {f"cycle{n}": make_remote(n, args.seed + n) for n in args.cycle_ns}
    if not args.no_import:
        datasets["import"] = make_remote(args.import_events, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="sync-bench-", dir=args.workdir))
    failures: list[str] = []
    imports: dict[str, Import] = {}
    radicale: Radicale | None = None
    try:
        vdir, vdir_error = None, None
        if not args.no_import and not args.no_vdirsyncer:
            try:
                vdir = install_vdirsyncer(Path(args.vdirsyncer_venv), args.vdirsyncer_spec)
                meta["vdirsyncer"] = (f"{vdir.version} in a throwaway venv ({args.vdirsyncer_venv}); storage "
                                      "caldav (no date range) into storage filesystem, `collections = null`")
            except cb.StartError as e:
                why = f"vdirsyncer could not be installed or run: {str(e).splitlines()[0][:200]}"
                meta["vdirsyncer"] = why
                failures.append(why)
                cb.log(why)
                vdir_error = "not run: vdirsyncer could not be installed or run (see Failures)"
        elif args.no_vdirsyncer:
            vdir_error = "not run (--no-vdirsyncer)"
        t0 = time.perf_counter()
        radicale = start_radicale(workdir, datasets, args.python)
        cb.log(f"Radicale up at {radicale.base_url} with {', '.join(f'{k} ({v.n})' for k, v in datasets.items())} "
               f"({time.perf_counter() - t0:.1f}s)")
        datasets.clear()  # written; the garbage collector should not walk them during the cycles
        gc.collect()
        bridge = open_calbridge(workdir)
        cycles, cycle_failures, profile = measure_cycles(bridge, radicale, args)
        failures += cycle_failures
        if not args.no_import:
            imports, import_failures, import_cycles = measure_imports(bridge, radicale, args, workdir, vdir,
                                                                      vdir_error)
            failures += import_failures
            cycles += import_cycles
        bridge.store.dispose()
    finally:
        if radicale is not None:
            radicale.server.stop()
        if args.keep:
            cb.log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["run time"] = f"{time.perf_counter() - started:.0f}s"
    report = render_report(cycles, imports, profile, meta, failures)
    print(report)
    if args.append_results:
        with open(args.append_results, "a", encoding="utf-8") as f:
            f.write("\n" + report)
        cb.log(f"appended to {args.append_results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
