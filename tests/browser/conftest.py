"""Browser tests run on SQLite only: they test the pages, which do not differ by database.

Debian's Chromium, driven by Playwright (a Playwright browser download cannot work here); under CI=true a
missing Chromium fails instead of skipping, since CI installs it (.ci/run). Screenshots of each page go to
tests/artifacts/ (not committed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CALBRIDGE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'calbridge.sqlite3'}"


@pytest.fixture
def page() -> Iterator[Any]:
    """A German Chromium page; it accepts the tests' own CA (the provider stand-ins serve TLS with it)."""
    if not CHROMIUM.exists():
        missing = (f"no Chromium at {CHROMIUM}: apt-get install chromium (a Playwright browser download "
                   "cannot work here)")
        if os.environ.get("CI") == "true":  # CI installs it (.ci/run): a skip there would hide a lost test
            pytest.fail(missing)
        pytest.skip(missing)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(locale="de-DE", viewport={"width": 1200, "height": 900},
                                      ignore_https_errors=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def shot() -> Callable[[Any, str], None]:
    """Save a full-page screenshot as tests/artifacts/admin_<name>.png."""
    def take(page: Any, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"admin_{name}.png"), full_page=True)
    return take
