"""Browser tests run on SQLite only: they test the pages, which do not differ by database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'calbridge.sqlite3'}"
