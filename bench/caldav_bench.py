#!/usr/bin/env python3
"""CalDAV benchmark: calbridge (SQL storage) against stock Radicale 3.9 (multifilesystem).

Both servers get the same deterministic calendar of N events (about 20 events a week, 2 % of them
weekly series with COUNT=20; the span grows with N so that a one-week answer has the same size at
every N) and are timed over HTTP with one persistent httpx client and Basic auth:

  PUT new event (If-None-Match: *), GET one event, one-week calendar-query (getetag + calendar-data),
  four-week free-busy-query, sync-collection after one change, initial sync-collection.

Run:  .venv/bin/python bench/caldav_bench.py [--n 1000,10000,100000] [--servers radicale,calbridge]
                                           [--markdown-out bench/RESULTS.md]

The report (Markdown) goes to stdout, progress to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent

USER = "bench"
PASSWORD = "bench-Secret-42"
SLUG = "work"
TENANT = "bench"

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC

EVENTS_PER_WEEK = 20
SERIES_EVERY = 50  # every 50th event is a weekly series -> 2 %
SERIES_COUNT = 20
UTC_SHARE = 0.3  # share of single events written in UTC instead of TZID=Europe/Berlin
# The middle week of the span is always the week starting on this Monday, so the queried window
# is the same date at every N.
ANCHOR_MONDAY = dt.date(2026, 1, 5)
DTSTAMP_BASE = dt.datetime(2025, 12, 1, 9, 0, tzinfo=UTC)

VTIMEZONE_BERLIN = [
    "BEGIN:VTIMEZONE",
    "TZID:Europe/Berlin",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0200",
    "TZNAME:CEST",
    "DTSTART:19700329T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0200",
    "TZOFFSETTO:+0100",
    "TZNAME:CET",
    "DTSTART:19701025T030000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
]

SUMMARIES = [
    "Team stand-up", "1:1", "Customer call", "Project review", "Sprint planning", "Design sync",
    "Dentist appointment", "Consultation", "Interview", "Budget meeting", "Workshop", "Lunch",
    "Support handover", "Onboarding session", "Quarterly review", "Vendor demo",
]
LOCATIONS = ["Room 2.14", "Room 3.01", "Berlin office, Torstr. 5", "Video call", "Cafe Einstein",
             "Practice, Karl-Marx-Allee 12"]
PEOPLE = ["anna.schmidt", "ben.mueller", "clara.weber", "david.fischer", "eva.wagner", "felix.becker",
          "greta.hoffmann", "hans.schulz", "ida.koch", "jonas.richter"]

CALDAV_NS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'
RE_RESPONSE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?response\b")
RE_SYNC_TOKEN = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?sync-token\s*>\s*([^<\s]+)\s*<")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def fmt_utc(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def fold(line: str) -> list[str]:
    """RFC 5545 line folding at 75 octets (content here is ASCII)."""
    if len(line) <= 75:
        return [line]
    out = [line[:75]]
    rest = line[75:]
    while rest:
        out.append(" " + rest[:74])
        rest = rest[74:]
    return out


@dataclass
class Event:
    uid: str
    week: int
    start: dt.datetime  # aware, Europe/Berlin
    minutes: int
    series: bool
    utc: bool
    summary: str
    location: str | None
    description: str | None
    attendees: list[str]
    alarm: bool
    created: dt.datetime

    @property
    def href(self) -> str:
        return f"{self.uid}.ics"

    def render(self, sequence: int = 0, summary_suffix: str = "",
               modified: dt.datetime | None = None) -> str:
        end = self.start + dt.timedelta(minutes=self.minutes)
        modified = modified or self.created
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//calbridge//caldav-bench//EN",
                 "CALSCALE:GREGORIAN"]
        if not self.utc:
            lines += VTIMEZONE_BERLIN
        lines += ["BEGIN:VEVENT", f"UID:{self.uid}", f"DTSTAMP:{fmt_utc(modified)}",
                  f"CREATED:{fmt_utc(self.created)}", f"LAST-MODIFIED:{fmt_utc(modified)}"]
        if self.utc:
            lines += [f"DTSTART:{fmt_utc(self.start)}", f"DTEND:{fmt_utc(end)}"]
        else:
            lines += [f"DTSTART;TZID=Europe/Berlin:{self.start:%Y%m%dT%H%M%S}",
                      f"DTEND;TZID=Europe/Berlin:{end:%Y%m%dT%H%M%S}"]
        if self.series:
            lines.append(f"RRULE:FREQ=WEEKLY;COUNT={SERIES_COUNT}")
        lines += [f"SUMMARY:{self.summary}{summary_suffix}", f"SEQUENCE:{sequence}",
                  "STATUS:CONFIRMED", "TRANSP:OPAQUE"]
        if self.location:
            lines.append(f"LOCATION:{self.location}")
        if self.description:
            lines += fold(f"DESCRIPTION:{self.description}")
        if self.attendees:
            lines += fold(f"ORGANIZER;CN={self.attendees[0]}:mailto:{self.attendees[0]}@example.com")
            for who in self.attendees[1:]:
                lines += fold(f"ATTENDEE;CN={who};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:"
                              f"mailto:{who}@example.com")
        if self.alarm:
            lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", "TRIGGER:-PT15M",
                      "END:VALARM"]
        lines += ["END:VEVENT", "END:VCALENDAR"]
        return "\r\n".join(lines) + "\r\n"


def make_event(rng: random.Random, first_monday: dt.date, week: int, series: bool) -> Event:
    # Always draw the same number of random values so the stream stays aligned.
    uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    weekday = rng.randrange(5)
    start_min = 8 * 60 + 15 * rng.randrange(37)  # 08:00 .. 17:00 local
    minutes = rng.choice((30, 45, 60, 60, 60, 90))
    utc = rng.random() < UTC_SHARE
    summary = rng.choice(SUMMARIES)
    loc_draw, desc_draw, att_draw, alarm_draw = rng.random(), rng.random(), rng.random(), rng.random()
    location = rng.choice(LOCATIONS)
    n_att = rng.randrange(2, 5)
    attendees = rng.sample(PEOPLE, n_att + 1)
    age_days = rng.randrange(1, 400)
    day = first_monday + dt.timedelta(weeks=week, days=weekday)
    start = dt.datetime(day.year, day.month, day.day, start_min // 60, start_min % 60, tzinfo=BERLIN)
    description = None
    if desc_draw < 0.25:
        description = (f"Agenda for {summary.lower()}: status, open points, next steps. "
                       f"Dial-in details are in the invitation; ticket #{rng.randrange(10000, 99999)}.")
    return Event(uid=uid, week=week, start=start, minutes=minutes, series=series,
                 utc=utc and not series, summary=summary,
                 location=location if loc_draw < 0.4 else None, description=description,
                 attendees=attendees if att_draw < 0.25 else [], alarm=alarm_draw < 0.3,
                 created=DTSTAMP_BASE - dt.timedelta(days=age_days))


@dataclass
class Dataset:
    n: int
    seed: int
    weeks: int
    first_monday: dt.date
    events: list[Event]
    texts: list[str]
    new_events: list[Event]  # for the PUT benchmark (same list for both servers)
    change_pool: list[Event]  # events modified for the delta-sync benchmark

    def week_start(self, week: int) -> dt.datetime:
        d = self.first_monday + dt.timedelta(weeks=week)
        return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)

    @property
    def mid_week(self) -> int:
        return self.weeks // 2


def make_dataset(n: int, seed: int, n_new: int) -> Dataset:
    weeks = max(1, math.ceil(n / EVENTS_PER_WEEK))
    first_monday = ANCHOR_MONDAY - dt.timedelta(weeks=weeks // 2)
    rng = random.Random(seed)
    events = [make_event(rng, first_monday, i // EVENTS_PER_WEEK, i % SERIES_EVERY == SERIES_EVERY // 2)
              for i in range(n)]
    texts = [e.render() for e in events]
    # Writes go to the first quarter of the span, away from the queried middle weeks.
    early = max(1, weeks // 4)
    rng_new = random.Random(seed + 1)
    new_events = [make_event(rng_new, first_monday, rng_new.randrange(early), False) for _ in range(n_new)]
    change_pool = [e for e in events if e.week < early and not e.series] or events[:1]
    return Dataset(n, seed, weeks, first_monday, events, texts, new_events, change_pool)


# --------------------------------------------------------------------------------------------
# calbridge loader (may be replaced by a bulk path later; keep the signature)
# --------------------------------------------------------------------------------------------

def merge_calendars(texts: Sequence[str]) -> str:
    """One VCALENDAR holding every event of ``texts`` (and each VTIMEZONE once), for
    ``calbridge calendar import``, calbridge's bulk path."""
    timezones: dict[str, str] = {}
    events: list[str] = []
    for text in texts:
        block: list[str] = []
        kind = None
        for line in text.split("\r\n"):
            if kind is None and line in ("BEGIN:VTIMEZONE", "BEGIN:VEVENT"):
                kind = line[6:]
            if kind is not None:
                block.append(line)
                if line == f"END:{kind}":
                    joined = "\r\n".join(block) + "\r\n"
                    if kind == "VTIMEZONE":
                        tzid = next(x for x in block if x.startswith("TZID:"))
                        timezones.setdefault(tzid, joined)
                    else:
                        events.append(joined)
                    block, kind = [], None
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge//bench//EN\r\n"
            + "".join(timezones.values()) + "".join(events) + "END:VCALENDAR\r\n")


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------

class StartError(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServerProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path):
        self.name, self.argv, self.env, self.cwd, self.log_path = name, argv, env, cwd, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        try:
            with open(self.log_path, "ab") as logf:  # the child keeps its own copy of the descriptor
                self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise StartError(f"cannot run {self.argv[0]}: {e}") from e

    def wait_ready(self, url: str, timeout: float, want_200: bool) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"{self.name} exited with rc {self.proc.returncode}:\n{tail(self.log_path)}")
            try:
                r = httpx.get(url, timeout=2)
                if not want_200 or r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StartError(f"{self.name} not ready at {url} after {timeout:.0f}s:\n{tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The server runs in its own session started by us: signal its process group only.
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        self.proc = None


@dataclass
class Target:
    name: str
    base_url: str
    cal_path: str  # collection path ending in "/"
    server: ServerProcess
    setup: dict[str, float] = field(default_factory=dict)


def report_sync(client: httpx.Client, cal_path: str, token: str, timeout=None) -> httpx.Response:
    body = (f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{xml_escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
            f"<D:prop><D:getetag/></D:prop></D:sync-collection>")
    return client.request("REPORT", cal_path, content=body.encode(), timeout=timeout,
                          headers={"Content-Type": "application/xml; charset=utf-8"})


def write_radicale_collection(coll: Path, ds: Dataset, displayname: str = "Work") -> None:
    """Write ``ds`` as a Radicale calendar collection at ``coll`` (which must not exist yet).

    Layout as multifilesystem writes it: one file per item named by its href, collection
    properties in .Radicale.props. The item cache (.Radicale.cache/item) and the history used for
    sync tokens are built by the server on the first request."""
    coll.mkdir(parents=True)
    (coll / ".Radicale.props").write_text(json.dumps({"tag": "VCALENDAR", "D:displayname": displayname},
                                                     sort_keys=True), encoding="utf-8")
    for ev, text in zip(ds.events, ds.texts, strict=True):
        with open(coll / ev.href, "wb") as f:
            f.write(text.encode("utf-8"))


def start_radicale(workdir: Path, ds: Dataset, python: str) -> Target:
    """Write ``ds`` into /bench/work/ and start Radicale on it. Other collections written under
    ``workdir / "radicale" / "collections" / "collection-root" / USER`` before the call are served too."""
    root = workdir / "radicale"
    t0 = time.perf_counter()
    write_radicale_collection(root / "collections" / "collection-root" / USER / SLUG, ds)
    write_s = time.perf_counter() - t0
    (root / "users").write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    port = free_port()
    config = root / "config"
    config.write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {root / 'users'}\n"
        "htpasswd_encryption = plain\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        "type = multifilesystem\n"
        f"filesystem_folder = {root / 'collections'}\n"
        "[web]\n"
        "type = none\n"
        "[logging]\n"
        "level = warning\n", encoding="utf-8")
    env = dict(os.environ)
    env.pop("RADICALE_CONFIG", None)
    server = ServerProcess("radicale", [python, "-m", "radicale", "--config", str(config)], env, root,
                           root / "server.log")
    base = f"http://127.0.0.1:{port}"
    start_ready(server, base + "/", 60, want_200=False)
    return Target("radicale", base, f"/{USER}/{SLUG}/", server, {"load_s": write_s})


def start_ready(server: ServerProcess, url: str, timeout: float, want_200: bool) -> None:
    """Start ``server`` and wait until ``url`` answers; stop it again if it never does."""
    server.start()
    try:
        server.wait_ready(url, timeout, want_200=want_200)
    except BaseException:
        server.stop()
        raise


def run_cli(python: str, args: list[str], env: dict[str, str], stdin: str | None = None,
            timeout: float = 300) -> None:
    cmd = [python, "-m", "bridge", *args]
    try:
        p = subprocess.run(cmd, env=env, cwd=REPO_ROOT, input=stdin, capture_output=True, text=True,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StartError(f"`{' '.join(cmd[1:])}` failed: {e}") from e
    if p.returncode != 0:
        out = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        raise StartError(f"`python -m bridge {' '.join(args)}` exited with rc {p.returncode}:\n{out}")


def start_calbridge(workdir: Path, ds: Dataset, python: str, db_url: str | None) -> Target:
    root = workdir / "calbridge"
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    env = dict(os.environ)
    env["BRIDGE_DATABASE_URL"] = db_url or f"sqlite:///{root / 'calbridge.sqlite3'}"
    env["BRIDGE_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    run_cli(python, ["migrate"], env)
    run_cli(python, ["tenant", "create", TENANT], env)
    run_cli(python, ["user", "create", "--tenant", TENANT, "--login", USER, "--email", f"{USER}@example.com",
                     "--role", "member", "--password-stdin"], env, stdin=PASSWORD + "\n")
    run_cli(python, ["calendar", "create", "--owner", USER, "--slug", SLUG, "--name", "Work",
                     "--timezone", "Europe/Berlin"], env)
    t0 = time.perf_counter()
    export = root / "export.ics"
    export.write_text(merge_calendars(ds.texts), encoding="utf-8")
    # about 10 ms an event with a VTIMEZONE; allow three times that
    run_cli(python, ["calendar", "import", "--owner", USER, "--slug", SLUG, str(export)], env,
            timeout=max(300.0, 0.03 * ds.n))
    load_s = time.perf_counter() - t0
    port = free_port()
    server = ServerProcess("calbridge", [python, "-m", "bridge", "serve", "--host", "127.0.0.1",
                                         "--port", str(port)], env, REPO_ROOT, root / "server.log")
    base = f"http://127.0.0.1:{port}"
    start_ready(server, base + "/healthz", 120, want_200=True)
    return Target("calbridge", base, f"/dav/{USER}/{SLUG}/", server, {"load_s": load_s})


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------

class OpError(Exception):
    pass


@dataclass
class OpResult:
    samples: list[float] = field(default_factory=list)  # ms
    items: int | None = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        if not self.samples:
            return None
        s = sorted(self.samples)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2

    @property
    def p95(self) -> float | None:
        if not self.samples:
            return None
        s = sorted(self.samples)
        return s[max(0, math.ceil(0.95 * len(s)) - 1)]


def expect(r: httpx.Response, codes: tuple[int, ...], what: str) -> None:
    if r.status_code not in codes:
        raise OpError(f"{what}: HTTP {r.status_code} {r.text[:200]!r}")


def timed(fn: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = fn()  # non-streaming: the whole body is read inside
    return (time.perf_counter() - t0) * 1000.0, r


def measure(step: Callable[[], tuple[float, int | None]], reps: int, warmup: int, budget_s: float,
            min_reps: int = 5) -> OpResult:
    res = OpResult()
    try:
        for _ in range(warmup):
            step()
        begin = time.perf_counter()
        for _ in range(reps):
            ms, items = step()
            res.samples.append(ms)
            res.items = items
            if time.perf_counter() - begin > budget_s and len(res.samples) >= min_reps:
                break
    except (OpError, httpx.HTTPError) as e:
        res.error = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    return res


OPS = [
    ("put", "PUT new event"),
    ("get", "GET event"),
    ("week", "calendar-query, 1 week"),
    ("freebusy", "free-busy-query, 4 weeks"),
    ("delta", "sync-collection, delta after 1 change"),
    ("initial", "sync-collection, initial"),
]
OP_TITLES = dict(OPS)


def calendar_query_body(start: dt.datetime, end: dt.datetime) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {CALDAV_NS}>'
            f"<D:prop><D:getetag/><C:calendar-data/></D:prop>"
            f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{fmt_utc(start)}" end="{fmt_utc(end)}"/>'
            f"</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>").encode()


def freebusy_body(start: dt.datetime, end: dt.datetime) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><C:free-busy-query {CALDAV_NS}>'
            f'<C:time-range start="{fmt_utc(start)}" end="{fmt_utc(end)}"/></C:free-busy-query>').encode()


def count_freebusy_periods(text: str) -> int:
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    return sum(len(line.split(":", 1)[1].split(","))
               for line in unfolded.splitlines() if line.upper().startswith("FREEBUSY") and ":" in line)


def sync_token_of(r: httpx.Response) -> str:
    m = RE_SYNC_TOKEN.search(r.content)
    if not m:
        raise OpError("no sync-token in sync-collection response")
    return m.group(1).decode()


def run_ops(t: Target, ds: Dataset, args) -> dict[str, OpResult]:
    out: dict[str, OpResult] = {}
    ical_headers = {"Content-Type": "text/calendar; charset=utf-8"}
    xml_headers = {"Content-Type": "application/xml; charset=utf-8"}
    cal = t.cal_path
    mid = ds.mid_week
    week_start, week_end = ds.week_start(mid), ds.week_start(mid + 1)
    fb_start, fb_end = ds.week_start(mid), ds.week_start(mid + 4)
    get_hrefs = [e.href for e in ds.events if e.week == mid] or [ds.events[0].href]
    budget = args.budget
    with httpx.Client(base_url=t.base_url, auth=(USER, PASSWORD), timeout=args.timeout) as client:
        # Warm-up: the first initial sync (Radicale builds its item and history caches here).
        t0 = time.perf_counter()
        r = report_sync(client, cal, "", timeout=None)
        expect(r, (207,), "warm-up sync-collection")
        t.setup["first_request_s"] = time.perf_counter() - t0
        n_warm = len(RE_RESPONSE.findall(r.content))
        if n_warm != ds.n:
            log(f"  warning: {t.name} initial sync lists {n_warm} items, expected {ds.n}")

        counter = {"get": 0, "put": 0, "change": 0}

        def step_get():
            href = get_hrefs[counter["get"] % len(get_hrefs)]
            counter["get"] += 1
            ms, r = timed(lambda: client.get(cal + href))
            expect(r, (200,), "GET")
            return ms, 1

        week_body = calendar_query_body(week_start, week_end)

        def step_week():
            ms, r = timed(lambda: client.request("REPORT", cal, content=week_body,
                                                 headers={**xml_headers, "Depth": "1"}))
            expect(r, (207,), "calendar-query")
            return ms, len(RE_RESPONSE.findall(r.content))

        fb_body = freebusy_body(fb_start, fb_end)

        def step_freebusy():
            ms, r = timed(lambda: client.request("REPORT", cal, content=fb_body,
                                                 headers={**xml_headers, "Depth": "1"}))
            expect(r, (200,), "free-busy-query")
            return ms, count_freebusy_periods(r.text)

        def step_initial():
            ms, r = timed(lambda: report_sync(client, cal, ""))
            expect(r, (207,), "initial sync-collection")
            return ms, len(RE_RESPONSE.findall(r.content))

        def step_put():
            i = counter["put"]
            counter["put"] += 1
            if i >= len(ds.new_events):
                raise OpError("ran out of new events")
            ev = ds.new_events[i]
            body = ev.render().encode()
            ms, r = timed(lambda: client.put(cal + ev.href, content=body,
                                             headers={**ical_headers, "If-None-Match": "*"}))
            expect(r, (201, 204), "PUT new")
            return ms, None

        sync_state = {"token": None}

        def step_delta():
            if sync_state["token"] is None:
                r0 = report_sync(client, cal, "")
                expect(r0, (207,), "sync-collection (token)")
                sync_state["token"] = sync_token_of(r0)
            k = counter["change"]
            counter["change"] += 1
            ev = ds.change_pool[k % len(ds.change_pool)]
            seq = 1 + k // len(ds.change_pool)
            body = ev.render(sequence=seq, summary_suffix=f" (changed {k})",
                             modified=DTSTAMP_BASE + dt.timedelta(days=30, seconds=k)).encode()
            r1 = client.put(cal + ev.href, content=body, headers=ical_headers)
            expect(r1, (200, 201, 204), "PUT change")
            ms, r = timed(lambda: report_sync(client, cal, sync_state["token"]))
            expect(r, (207,), "delta sync-collection")
            sync_state["token"] = sync_token_of(r)
            return ms, len(RE_RESPONSE.findall(r.content))

        initial_reps = max(3, min(args.reps, args.initial_sync_budget // max(1, ds.n)))
        plan = [
            ("get", step_get, args.reps),
            ("week", step_week, args.reps),
            ("freebusy", step_freebusy, args.reps),
            ("initial", step_initial, initial_reps),
            ("put", step_put, args.reps),
            ("delta", step_delta, args.reps),
        ]
        for key, step, reps in plan:
            if key not in args.ops:
                continue
            t0 = time.perf_counter()
            # The initial sync already ran once as the server warm-up: one more untimed run is enough.
            warmup = min(args.warmup, 1) if key == "initial" else args.warmup
            res = measure(step, reps, warmup, budget, min_reps=min(5, reps))
            out[key] = res
            state = f"error: {res.error}" if res.error else (
                f"median {fmt_ms(res.median)} ms, p95 {fmt_ms(res.p95)} ms, {len(res.samples)} reps, "
                f"items {res.items}")
            log(f"  {t.name:9s} N={ds.n:<7d} {OP_TITLES[key]:38s} {state} "
                f"({time.perf_counter() - t0:.1f}s)")
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:.0f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.3f}" if r < 1 else f"{r:.2f}"


GOALS_TEXT = [
    "Goals for calbridge, N=10,000: PUT < 5 ms, week query < 15 ms, delta sync < 10 ms (median);",
    "week query and delta sync flat within 2x from N=1,000 to N=100,000.",
]


def cell(results, server, n, key, attr):
    res = results.get((server, n), {})
    if isinstance(res, str):
        return None, "failed"
    r = res.get(key)
    if r is None:
        return None, "–"
    if r.error:
        return None, "error"
    v = getattr(r, attr)
    return v, fmt_ms(v)


def goal_lines(results, ns) -> list[str]:
    lines = []

    def med(n, key):
        res = results.get(("calbridge", n))
        if not isinstance(res, dict) or key not in res or res[key].error:
            return None
        return res[key].median

    for key, limit in (("put", 5.0), ("week", 15.0), ("delta", 10.0)):
        v = med(10000, key)
        if v is None:
            lines.append(f"- {OP_TITLES[key]} at N=10,000 < {limit:g} ms: not measured")
        else:
            lines.append(f"- {OP_TITLES[key]} at N=10,000 < {limit:g} ms: {fmt_ms(v)} ms "
                         f"{'PASS' if v < limit else 'FAIL'}")
    lo, hi = min(ns), max(ns)
    for key in ("week", "delta"):
        a, b = med(lo, key), med(hi, key)
        if a is None or b is None or lo == hi:
            lines.append(f"- {OP_TITLES[key]} flat within 2x: not measured")
            continue
        note = "" if (lo <= 1000 and hi >= 100000) else f" (measured N={lo:,} to {hi:,} only)"
        ratio = b / a
        lines.append(f"- {OP_TITLES[key]} N={hi:,} / N={lo:,}: {ratio:.2f}x "
                     f"{'PASS' if ratio <= 2 else 'FAIL'}{note}")
    return lines


def render_report(results, setups, ns, servers, args, meta) -> str:
    out = ["# CalDAV benchmark: calbridge vs Radicale 3.9 (multifilesystem)", ""]
    out += [f"- {k}: {v}" for k, v in meta.items()]
    out += ["", "Times in ms, measured client-side over loopback (httpx, keep-alive, Basic auth); "
            "ratio = calbridge / radicale (< 1: calbridge faster).", ""]
    out.append("| operation | N | calbridge median ms | radicale median ms | ratio | calbridge p95 ms "
               "| radicale p95 ms | p95 ratio | reps cb/rad | items cb/rad |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, title in OPS:
        if key not in args.ops:
            continue
        for n in ns:
            cm, cms = cell(results, "calbridge", n, key, "median")
            rm, rms = cell(results, "radicale", n, key, "median")
            cp, cps = cell(results, "calbridge", n, key, "p95")
            rp, rps = cell(results, "radicale", n, key, "p95")
            reps, items = [], []
            for s in ("calbridge", "radicale"):
                res = results.get((s, n), {})
                r = res.get(key) if isinstance(res, dict) else None
                reps.append(str(len(r.samples)) if r and r.samples else "–")
                items.append(str(r.items) if r and r.items is not None and not r.error else "–")
            out.append(f"| {title} | {n:,} | {cms} | {rms} | {fmt_ratio(cm, rm)} | {cps} | {rps} | "
                       f"{fmt_ratio(cp, rp)} | {'/'.join(reps)} | {'/'.join(items)} |")
    out += ["", "## Goals", ""] + [f"{g}" for g in GOALS_TEXT] + [""] + goal_lines(results, ns)
    out += ["", "## Setup", "", "| server | N | load s | first request s | status |", "|---|---:|---:|---:|---|"]
    for n in ns:
        for s in servers:
            st = setups.get((s, n), {})
            res = results.get((s, n))
            status = res if isinstance(res, str) else "ok"
            load = f"{st['load_s']:.1f}" if "load_s" in st else "–"
            first = f"{st['first_request_s']:.1f}" if "first_request_s" in st else "–"
            out.append(f"| {s} | {n:,} | {load} | {first} | {status} |")
    errors = [(s, n, k, r.error) for (s, n), res in results.items() if isinstance(res, dict)
              for k, r in res.items() if r.error]
    if errors:
        out += ["", "## Errors", ""] + [f"- {s} N={n:,} {OP_TITLES[k]}: {e}" for s, n, k, e in errors]
    out += ["", "Load: radicale = writing the .ics files into the collection folder; calbridge = "
            "`calbridge calendar import` of one merged .ics (its bulk path). "
            "First request = initial sync-collection right after "
            "start (Radicale builds its item and history caches there)."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", default="1000,10000", help="comma-separated event counts (default 1000,10000)")
    p.add_argument("--servers", default="calbridge,radicale", help="calbridge,radicale (default both)")
    p.add_argument("--ops", default=",".join(k for k, _ in OPS), help="subset of: " + ",".join(k for k, _ in OPS))
    p.add_argument("--reps", type=int, default=40, help="timed repetitions per operation (default 40)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions before timing (default 3)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds per operation after which repetitions stop (at least 5 are taken)")
    p.add_argument("--initial-sync-budget", type=int, default=100000,
                   help="initial sync reps = clamp(this / N, 3, reps) (default 100000)")
    p.add_argument("--timeout", type=float, default=600.0, help="HTTP timeout in seconds")
    p.add_argument("--seed", type=int, default=20260105)
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the servers")
    p.add_argument("--calbridge-db-url", default=None,
                   help="BRIDGE_DATABASE_URL (default: a fresh SQLite file in the work dir; must be an "
                        "empty database for every N)")
    p.add_argument("--workdir", default=None, help="parent for temp dirs (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dirs")
    p.add_argument("--markdown-out", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    args.ns = [int(x.replace("_", "")) for x in args.n.split(",") if x.strip()]
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    bad = set(args.server_list) - {"calbridge", "radicale"}
    if bad or not args.server_list:
        p.error(f"--servers: unknown {sorted(bad)}")
    args.ops = {s.strip() for s in args.ops.split(",") if s.strip()}
    if args.ops - set(OP_TITLES):
        p.error(f"--ops: unknown {sorted(args.ops - set(OP_TITLES))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        import radicale
        radicale_version = radicale.VERSION
    except ImportError:
        radicale_version = "?"
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "radicale": f"{radicale_version}, storage multifilesystem, default settings (fsync on)",
        "data": f"{EVENTS_PER_WEEK} events/week, 2% weekly series COUNT={SERIES_COUNT}, "
                f"{int(UTC_SHARE * 100)}% of single events in UTC, rest TZID=Europe/Berlin; seed {args.seed}",
        "reps": f"{args.reps} (+{args.warmup} warm-up), budget {args.budget:g}s per operation",
    }
    results: dict[tuple[str, int], dict[str, OpResult] | str] = {}
    setups: dict[tuple[str, int], dict[str, float]] = {}
    for n in args.ns:
        t0 = time.perf_counter()
        ds = make_dataset(n, args.seed, args.reps + args.warmup)
        log(f"N={n}: {ds.weeks} weeks, queried week {ds.mid_week} ({ds.week_start(ds.mid_week):%Y-%m-%d}); "
            f"data generated in {time.perf_counter() - t0:.1f}s")
        for server in args.server_list:
            workdir = Path(tempfile.mkdtemp(prefix=f"caldav-bench-{server}-{n}-", dir=args.workdir))
            target = None
            try:
                t0 = time.perf_counter()
                try:
                    if server == "radicale":
                        target = start_radicale(workdir, ds, args.python)
                    else:
                        target = start_calbridge(workdir, ds, args.python, args.calbridge_db_url)
                except StartError as e:
                    msg = f"{server} failed to start"
                    print(f"{msg}: {e}", file=sys.stderr, flush=True)
                    results[(server, n)] = msg
                    continue
                log(f"  {server} up at {target.base_url} with {n} events ({time.perf_counter() - t0:.1f}s)")
                try:
                    results[(server, n)] = run_ops(target, ds, args)
                except (OpError, httpx.HTTPError) as e:
                    results[(server, n)] = f"{server} failed: {str(e).splitlines()[0][:100]}"
                    log(f"  {results[(server, n)]}\n{tail(target.server.log_path)}")
                setups[(server, n)] = target.setup
            finally:
                if target is not None:
                    target.server.stop()
                if args.keep:
                    log(f"  kept {workdir}")
                else:
                    shutil.rmtree(workdir, ignore_errors=True)
    meta["run time"] = f"{time.perf_counter() - started:.0f}s"
    report = render_report(results, setups, args.ns, args.server_list, args, meta)
    print(report)
    if args.markdown_out:
        Path(args.markdown_out).write_text(report, encoding="utf-8")
        log(f"wrote {args.markdown_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
