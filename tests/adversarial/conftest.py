"""Attacks as a stranger, another tenant or a careless client would make them, over HTTP.

Every test here runs against a live calbridge (the ``bridge`` fixture of ``tests/conftest.py``,
on SQLite and on PostgreSQL) and asserts what the victim would notice: that nothing of
another tenant changed and nothing was lost.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import DavServer, radicale_server


@pytest.fixture(scope="module")
def remote() -> Iterator[DavServer]:
    """A stock Radicale standing in for a practitioner's external calendar."""
    with radicale_server() as server:
        yield server
