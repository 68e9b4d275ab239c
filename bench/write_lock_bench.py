"""One large resource must not stall every tenant's writes on SQLite (issue 16, deliverable 7).

SQLite has one write lock for the whole database, so whatever a PUT does while it holds the
lock (``BEGIN IMMEDIATE``) every other tenant's PUT waits for. This bench measures a small
tenant's PUT latency in two phases of one run against one ``calbridge serve`` on SQLite:

1. alone: tenant "small" PUTs one-hour events in a loop;
2. beside a large writer: the same loop while tenant "big" PUTs, again and again, one event
   series with N overrides (RECURRENCE-ID), which takes long to parse and expand.

It prints the small PUTs' median and p95 in both phases side by side, their ratio, and the
large PUT's own time. Run: ``.venv/bin/python bench/write_lock_bench.py [--overrides 2000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from caldav_bench import REPO_ROOT, ServerProcess, free_port, run_cli  # noqa: E402

PASSWORD = "bench-Secret-42"


def small_event(uid: str, day: int) -> str:
    start = dt.datetime(2027, 1, 4, 9) + dt.timedelta(days=day % 300)
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
            f"DTSTAMP:20261201T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%S}Z\r\n"
            f"DTEND:{start + dt.timedelta(hours=1):%Y%m%dT%H%M%S}Z\r\nSUMMARY:Termin\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")


def large_series(uid: str, overrides: int, revision: int) -> str:
    """A daily series with ``overrides`` instances each moved by an hour: one resource, many components."""
    first = dt.datetime(2027, 1, 4, 9)
    parts = ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n",
             f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{first:%Y%m%dT%H%M%S}Z\r\n"
             f"DURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT={overrides}\r\nSUMMARY:Serie {revision}\r\nEND:VEVENT\r\n"]
    for n in range(overrides):
        original = first + dt.timedelta(days=n)
        moved = original + dt.timedelta(hours=1)
        parts.append(f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n"
                     f"RECURRENCE-ID:{original:%Y%m%dT%H%M%S}Z\r\nDTSTART:{moved:%Y%m%dT%H%M%S}Z\r\n"
                     f"DURATION:PT1H\r\nSUMMARY:Ausnahme {n}\r\nEND:VEVENT\r\n")
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(round(share * len(ordered))) - 1)]


def small_loop(base: str, count: int, tag: str) -> list[float]:
    times: list[float] = []
    with httpx.Client(base_url=base, auth=("small", PASSWORD), timeout=120) as client:
        for n in range(count):
            body = small_event(f"{tag}-{n}", n)
            began = time.perf_counter()
            answer = client.put(f"/dav/small/cal/{tag}-{n}.ics", content=body,
                                headers={"Content-Type": "text/calendar"})
            times.append((time.perf_counter() - began) * 1000)
            if answer.status_code not in (201, 204):
                raise SystemExit(f"small PUT answered {answer.status_code}: {answer.text[:200]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overrides", type=int, default=2000)
    parser.add_argument("--puts", type=int, default=300, help="small PUTs per phase")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="calbridge-lockbench-") as scratch:
        root = Path(scratch)
        env = dict(os.environ, BRIDGE_DATABASE_URL=f"sqlite:///{root / 'db.sqlite3'}", BRIDGE_DATA_DIR=str(root),
                   BRIDGE_MAX_BODY_BYTES=str(16 * 1024 * 1024), BRIDGE_AUTH_FAILURE_DELAY_SECONDS="0",
                   PYTHONPATH=str(REPO_ROOT))
        run_cli(python, ["migrate"], env)
        for login in ("small", "big"):
            run_cli(python, ["tenant", "create", f"Tenant {login}"], env)
            run_cli(python, ["user", "create", "--tenant", f"Tenant {login}", "--login", login, "--email",
                             f"{login}@example.org", "--role", "member", "--password-stdin"], env,
                    stdin=PASSWORD + "\n")
            run_cli(python, ["calendar", "create", "--owner", login, "--slug", "cal", "--name", "Cal",
                             "--timezone", "Europe/Berlin"], env)
        port = free_port()
        server = ServerProcess("calbridge", [python, "-m", "bridge", "serve", "--host", "127.0.0.1", "--port",
                                             str(port)], env, REPO_ROOT, root / "server.log")
        base = f"http://127.0.0.1:{port}"
        server.start()
        try:
            server.wait_ready(base + "/healthz", 60, want_200=True)
            small_loop(base, 20, "warm")
            alone = small_loop(base, args.puts, "alone")

            stop = threading.Event()
            large_times: list[float] = []

            def large_writer() -> None:
                with httpx.Client(base_url=base, auth=("big", PASSWORD), timeout=600) as client:
                    revision = 0
                    while not stop.is_set():
                        body = large_series("series", args.overrides, revision)
                        began = time.perf_counter()
                        answer = client.put("/dav/big/cal/series.ics", content=body,
                                            headers={"Content-Type": "text/calendar"})
                        large_times.append((time.perf_counter() - began) * 1000)
                        if answer.status_code not in (201, 204):
                            raise SystemExit(f"large PUT answered {answer.status_code}: {answer.text[:200]}")
                        revision += 1

            writer = threading.Thread(target=large_writer, daemon=True)
            writer.start()
            time.sleep(0.5)
            beside = small_loop(base, args.puts, "beside")
            stop.set()
            writer.join(600)
        finally:
            server.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
          f"machine {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"large resource: 1 series with {args.overrides} overrides; small PUTs per phase: {args.puts}")
    print("| small tenant's PUT | median ms | p95 ms |")
    print("|---|---:|---:|")
    print(f"| alone | {percentile(alone, 0.5):.1f} | {percentile(alone, 0.95):.1f} |")
    print(f"| beside the large writer | {percentile(beside, 0.5):.1f} | {percentile(beside, 0.95):.1f} |")
    print(f"| ratio | {percentile(beside, 0.5) / percentile(alone, 0.5):.2f}x | "
          f"{percentile(beside, 0.95) / percentile(alone, 0.95):.2f}x |")
    if large_times:
        print(f"large PUT: {len(large_times)} done, median {percentile(large_times, 0.5):.0f} ms, "
              f"p95 {percentile(large_times, 0.95):.0f} ms")


if __name__ == "__main__":
    main()
