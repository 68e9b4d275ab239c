"""Signing in to /admin over HTTP as a browser does: fetch the form, post it with its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from starlette.routing import Route

from bridge.secrets import Secrets
from bridge.store.models import Calendar
from bridge.sync import connection_admin
from bridge.web.admin import admin_routes
from bridge.web.admin.context import AdminContext
from tests.conftest import PASSWORD, Bridge

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(page.text)
    assert found is not None, f"no form with a CSRF token on {page.url}"
    return found.group(1)


def browser(bridge: Bridge, language: str = "de") -> httpx.Client:
    return httpx.Client(base_url=bridge.url + "/admin", timeout=30, headers={"Accept-Language": language})


def try_sign_in(client: httpx.Client, login: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/login")
    assert form.status_code == 200
    return client.post("/login", data={"csrf": csrf_of(form), "login": login, "password": password})


@contextmanager
def sign_in(bridge: Bridge, login: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A client with a live session of ``login``."""
    with browser(bridge) as client:
        answer = try_sign_in(client, login, password)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].endswith("/admin/calendars")
        yield client


def post_form(client: httpx.Client, page: str, action: str, data: dict[str, str] | None = None) -> httpx.Response:
    """Post a form of ``page`` with that page's CSRF token, as the browser would."""
    return client.post(action, data={"csrf": csrf_of(client.get(page)), **(data or {})})


def add_connection(bridge: Bridge, login: str, slug: str, password: str = "remote-secret-pw") -> int:
    """A CalDAV connection of ``login``'s calendar, stored as the pages would store it (never contacted)."""
    with bridge.store.write() as session:
        calendar = session.get(Calendar, bridge.calendar_id(login, slug))
        assert calendar is not None
        connection = connection_admin.create(
            session, calendar, "caldav", connection_admin.Checked("https://dav.example/cal/", f"{slug} extern"),
            server_url="https://dav.example/", credentials={"username": login, "password": password},
            direction=None, options={}, secrets=Secrets.from_settings(bridge.settings))
        return connection.id


def route_table(bridge: Bridge) -> set[tuple[str, str]]:
    """(method, path) of every route of /admin, from the app itself."""
    ctx = AdminContext(bridge.settings, bridge.store)
    return {(method, route.path) for route in admin_routes(ctx) if isinstance(route, Route)
            for method in (route.methods or ()) if method != "HEAD"}


def fill(path: str, ids: dict[str, int]) -> str:
    """A route's path with its parameters replaced by ``ids`` (a parameter without an id fails)."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in ids, f"no test object for the parameter {name!r} of {path}: add one"
        return str(ids[name])
    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)
