"""A manual action (a run from the admin page, the API or the CLI; a disconnect) holds the connection's lease for
as long as it lasts, renewing it, so the scheduler cannot run the connection beside it; a process that dies
mid-action frees the connection once the short lease expires instead of blocking it for an hour."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bridge.sync import connection_admin, scheduler
from tests.conftest import Bridge
from tests.integration.admin_client import add_connection


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(connection_admin, "MANUAL_LEASE_SECONDS", 0.3)
    return 0.3


def test_a_manual_action_longer_than_its_lease_keeps_the_scheduler_off(bridge: Bridge, short_lease: float) -> None:
    bridge.add_user("Praxis", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    connection_id = add_connection(bridge, "anna", "praxis")
    with connection_admin.leased(bridge.store, connection_id, "admin:1:a", datetime.now(UTC)):
        time.sleep(short_lease * 3)  # three lease lengths: only the renewals keep it
        assert not scheduler.claim_one(bridge.store, connection_id, "worker", datetime.now(UTC), 60)
        with pytest.raises(connection_admin.SyncInProgress), \
                connection_admin.leased(bridge.store, connection_id, "api:2:b", datetime.now(UTC)):
            pass
    assert scheduler.claim_one(bridge.store, connection_id, "worker", datetime.now(UTC), 60)  # released at the end


def test_a_holder_that_died_frees_the_connection_after_the_short_lease(bridge: Bridge, short_lease: float) -> None:
    bridge.add_user("Praxis", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    connection_id = add_connection(bridge, "anna", "praxis")
    assert scheduler.claim_one(bridge.store, connection_id, "admin:dead:c", datetime.now(UTC),
                               connection_admin.MANUAL_LEASE_SECONDS)  # claimed, never renewed nor released
    assert not scheduler.claim_one(bridge.store, connection_id, "worker", datetime.now(UTC), 60)
    time.sleep(short_lease + 0.1)
    assert scheduler.claim_one(bridge.store, connection_id, "worker", datetime.now(UTC), 60)
