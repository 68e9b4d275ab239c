"""``/metrics``: Prometheus text exposition of sync runs, connections and the outbox.

Every scrape is computed from the database with a few aggregate queries, so each web process
answers the same and scale-out needs nothing else. Label values come only from fixed sets
(provider names of :data:`bridge.adapters.BUILDERS`, statuses, states): never a login, tenant,
calendar, URL or address. Off unless ``metrics_token`` is set (404), then the scraper must send
``Authorization: Bearer <token>`` (401 otherwise). There is no webhook outbox to report: webhook
delivery follows a cursor (:mod:`bridge.webhooks`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bridge import adapters
from bridge.settings import Settings
from bridge.store import outbox, stats
from bridge.store.db import Store
from bridge.sync import scheduler

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROVIDERS = tuple(sorted(adapters.BUILDERS))
RUN_STATUSES = ("running", "ok", "partial", "failed", "held")
CONNECTION_STATES = ("enabled", "disabled", "needs_attention")
OUTBOX_STATUSES = (outbox.PENDING, outbox.SENT, outbox.FAILED)


@dataclass(frozen=True)
class Snapshot:
    """What one scrape reports, keyed by fixed label values only."""

    runs: dict[tuple[str, str], int]
    duration_sum: dict[str, float]
    duration_count: dict[str, int]
    requests: dict[str, int]
    connections: dict[tuple[str, str], int]
    due: int
    outbox: dict[str, int]


def collect(store: Store, now: datetime) -> Snapshot:
    """The store's aggregate counts in one read transaction (plus the scheduler's own count)."""
    with store.read() as session:
        runs: dict[tuple[str, str], int] = {}
        requests: dict[str, int] = {}
        for provider, status, count, total in stats.runs_by_provider(session):
            runs[(provider, status)] = count
            requests[provider] = requests.get(provider, 0) + total
        durations = stats.durations_by_provider(session, sqlite=store.is_sqlite)
        connections: dict[tuple[str, str], int] = {}
        for provider, enabled, attention, count in stats.connections_by_state(session):
            state = "needs_attention" if attention else "enabled" if enabled else "disabled"
            connections[(provider, state)] = connections.get((provider, state), 0) + count
        mails = outbox.counts(session)
    return Snapshot(runs=runs, duration_sum={p: s for p, s, _ in durations},
                    duration_count={p: c for p, _, c in durations}, requests=requests,
                    connections=connections, due=scheduler.due_count(store, now), outbox=mails)


def render(snapshot: Snapshot) -> str:
    """The text exposition format (0.0.4). Every fixed label value is listed, zeros included; a stored
    value outside the fixed sets (a provider only a newer build knows) is left out, never echoed."""
    lines: list[str] = []
    _family(lines, "calbridge_sync_runs_total", "counter",
            "Sync runs in the retained sync log (rows younger than sync_log_days), by provider and status.",
            ((f'provider="{p}",status="{s}"', snapshot.runs.get((p, s), 0))
             for p in PROVIDERS for s in RUN_STATUSES))
    _family(lines, "calbridge_sync_run_duration_seconds", "summary",
            "Duration of finished sync runs in the retained sync log, by provider.", ())
    for provider in PROVIDERS:
        lines.append(f'calbridge_sync_run_duration_seconds_sum{{provider="{provider}"}} '
                     f"{_number(snapshot.duration_sum.get(provider, 0.0))}")
        lines.append(f'calbridge_sync_run_duration_seconds_count{{provider="{provider}"}} '
                     f"{snapshot.duration_count.get(provider, 0)}")
    _family(lines, "calbridge_sync_upstream_requests_total", "counter",
            "Requests to providers made by the sync runs in the retained sync log, by provider.",
            ((f'provider="{p}"', snapshot.requests.get(p, 0)) for p in PROVIDERS))
    _family(lines, "calbridge_connections", "gauge",
            "Connections by provider and state (enabled, disabled, needs_attention; the last wins).",
            ((f'provider="{p}",state="{s}"', snapshot.connections.get((p, s), 0))
             for p in PROVIDERS for s in CONNECTION_STATES))
    _family(lines, "calbridge_connections_due", "gauge",
            "Connections due for a sync and not leased by a worker now.", (("", snapshot.due),))
    _family(lines, "calbridge_outbox_mails", "gauge", "Mails in the outbox by status.",
            ((f'status="{s}"', snapshot.outbox.get(s, 0)) for s in OUTBOX_STATUSES))
    return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str,
            samples: Iterable[tuple[str, int | float]]) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}")


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def metrics_endpoint(settings: Settings, store: Store) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``/metrics``: 404 when ``metrics_token`` is empty, 401 without it."""
    expected = settings.metrics_token.encode()

    async def metrics(request: Request) -> Response:
        if not expected:
            return PlainTextResponse("Not Found", status_code=404)
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            return PlainTextResponse("Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        snapshot = await run_in_threadpool(collect, store, datetime.now(UTC))
        return Response(render(snapshot), media_type=CONTENT_TYPE)

    return metrics
