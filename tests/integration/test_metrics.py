"""``/metrics`` over HTTP: the scrape parses, counts match the rows written, labels carry no personal data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store import connections, outbox
from bridge.store.db import Store
from bridge.store.models import Calendar, Outbox, SyncRun
from tests.conftest import Bridge, serve

TOKEN = "scrape-token-for-tests"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared settings with /metrics switched on."""
    return Settings(data_dir=tmp_path, auth_failure_delay_seconds=0, metrics_token=TOKEN)


def parse(text: str) -> Samples:
    """A small parser of the text format: every sample belongs to a family with HELP and TYPE."""
    helped: set[str] = set()
    typed: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            family = re.sub(r"_(sum|count)$", "", name) if name not in typed else name
            assert family in typed and family in helped, f"{name} has no HELP/TYPE"
            pairs = frozenset(LABEL.findall(labels or ""))
            assert (name, pairs) not in samples, f"duplicate sample {name}{{{labels}}}"
            samples[(name, pairs)] = float(value)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(bridge: Bridge, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(bridge.url + "/metrics", headers=headers, timeout=30)


def seed(bridge: Bridge, now: datetime) -> None:
    """Three connections (caldav enabled and due, google needing attention, ics disabled), five runs,
    three mails; the rows carry a login, an e-mail address and URLs the scrape must not show."""
    bridge.add_user("Praxis Sonnenschein", "dr.geheim")
    bridge.add_calendar("dr.geheim", "behandlung")
    calendar_id = bridge.calendar_id("dr.geheim", "behandlung")
    with bridge.store.write() as session:
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        caldav = connections.create_connection(session, calendar, "caldav")
        caldav.server_url = "https://secret-host.example.net/dav/dr.geheim/"
        caldav.next_due_at = now - timedelta(minutes=5)
        google = connections.create_connection(session, calendar, "google")
        google.needs_attention = True
        ics = connections.create_connection(session, calendar, "ics")
        ics.enabled = False
        ics.server_url = "https://feeds.example.net/private.ics"
        start = now - timedelta(hours=1)
        session.add_all([
            SyncRun(tenant_id=calendar.tenant_id, connection_id=caldav.id, trigger="schedule", status="ok",
                    started_at=start, finished_at=start + timedelta(seconds=2), requests=3),
            SyncRun(tenant_id=calendar.tenant_id, connection_id=caldav.id, trigger="schedule", status="ok",
                    started_at=start, finished_at=start + timedelta(seconds=4), requests=5),
            SyncRun(tenant_id=calendar.tenant_id, connection_id=caldav.id, trigger="manual", status="running",
                    started_at=start, requests=1),
            SyncRun(tenant_id=calendar.tenant_id, connection_id=google.id, trigger="schedule", status="failed",
                    started_at=start, finished_at=start + timedelta(seconds=1, milliseconds=500), requests=2,
                    error_class="AuthExpired"),
            SyncRun(tenant_id=calendar.tenant_id, connection_id=ics.id, trigger="schedule", status="partial",
                    started_at=start, finished_at=start + timedelta(seconds=10), requests=0),
        ])
        for number in range(3):
            outbox.enqueue(session, tenant_id=calendar.tenant_id, key=f"metrics-test-{number}", kind="notice_new",
                           message_id=f"<{number}@example.org>", envelope="", content="", now=now)
        session.flush()
        mail_ids = sorted(session.scalars(select(Outbox.id)))
        outbox.mark_sent(session, mail_ids[0], now)
        outbox.mark_failed(session, mail_ids[1], "SMTPRecipientsRefused")


def test_scrape_counts_what_was_written(bridge: Bridge) -> None:
    seed(bridge, datetime.now(UTC))
    response = scrape(bridge)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.text)

    assert value(samples, "calbridge_sync_runs_total", provider="caldav", status="ok") == 2
    assert value(samples, "calbridge_sync_runs_total", provider="caldav", status="running") == 1
    assert value(samples, "calbridge_sync_runs_total", provider="google", status="failed") == 1
    assert value(samples, "calbridge_sync_runs_total", provider="ics", status="partial") == 1
    assert value(samples, "calbridge_sync_runs_total", provider="microsoft", status="ok") == 0
    assert value(samples, "calbridge_sync_run_duration_seconds_count", provider="caldav") == 2
    assert value(samples, "calbridge_sync_run_duration_seconds_sum", provider="caldav") == pytest.approx(6, abs=0.01)
    assert value(samples, "calbridge_sync_run_duration_seconds_sum", provider="google") == pytest.approx(1.5, abs=0.01)
    assert value(samples, "calbridge_sync_upstream_requests_total", provider="caldav") == 9
    assert value(samples, "calbridge_sync_upstream_requests_total", provider="google") == 2
    assert value(samples, "calbridge_connections", provider="caldav", state="enabled") == 1
    assert value(samples, "calbridge_connections", provider="google", state="needs_attention") == 1
    assert value(samples, "calbridge_connections", provider="ics", state="disabled") == 1
    assert value(samples, "calbridge_connections", provider="ics", state="enabled") == 0
    assert value(samples, "calbridge_connections_due") == 1  # google needs attention, ics is disabled
    assert value(samples, "calbridge_outbox_mails", status="pending") == 1
    assert value(samples, "calbridge_outbox_mails", status="sent") == 1
    assert value(samples, "calbridge_outbox_mails", status="failed") == 1

    labels = {label for (_, pairs) in samples for label in pairs}
    assert {name for name, _ in labels} <= {"provider", "status", "state"}
    for secret in ("dr.geheim", "example", "Praxis", "Sonnenschein", "behandlung", "http", "@", "AuthExpired"):
        assert secret not in response.text


def test_wrong_or_missing_token_is_401(bridge: Bridge) -> None:
    assert scrape(bridge, "not-the-token").status_code == 401
    assert scrape(bridge, None).status_code == 401
    basic = httpx.get(bridge.url + "/metrics", auth=("metrics", TOKEN), timeout=30)
    assert basic.status_code == 401


def test_off_without_the_setting_is_404(store: Store, tmp_path: Path) -> None:
    with serve(store, Settings(data_dir=tmp_path, auth_failure_delay_seconds=0)) as url:
        assert httpx.get(url + "/metrics", headers={"Authorization": "Bearer x"}, timeout=30).status_code == 404
        assert httpx.get(url + "/metrics", timeout=30).status_code == 404
