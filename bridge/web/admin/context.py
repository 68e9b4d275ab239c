"""What every /admin handler needs: who is signed in, the form they posted with its CSRF token
checked, and the page rendered in their language.

CSRF: each session has its own random secret (bridge.store.admin_sessions); every form carries
it in a hidden field and a POST whose field does not match it (compared in constant time) is
refused with 403 before anything is read or changed. The login form, before any session, uses
a double-submit token: a random value in a cookie and in the form, which another site can
neither read nor set. SameSite=Lax on the session cookie is a second fence, not the only one.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bridge.passwords import CredentialCache
from bridge.settings import Settings
from bridge.store import admin_sessions
from bridge.store.db import Store
from bridge.store.models import utcnow
from bridge.web.admin.strings import browser_language, strings_for
from bridge.web.api.context import Keys

TEMPLATES = Path(__file__).with_name("templates")
SESSION_COOKIE = "calbridge_admin"
LOGIN_COOKIE = "calbridge_login"  # the login form's double-submit token
FORM_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Who:
    """The signed-in user of a request."""

    user_id: int
    tenant_id: int
    login: str
    role: str
    language: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Refused(Exception):
    """An answer instead of the page: an error page in the user's language, or a redirect."""

    def __init__(self, status: int, *, location: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {location}".strip())
        self.status = status
        self.location = location
        self.headers = headers or {}


def not_found() -> Refused:
    """The same answer for what does not exist and what belongs to another tenant or user."""
    return Refused(404)


def root(request: Request) -> str:
    """Where /admin is mounted, as the browser sees it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


class AdminContext:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.credentials = CredentialCache(ttl=0)  # the CalDAV auth's check, without its cache
        self.keys = Keys(settings)  # connection credentials and pending sign-ins are encrypted with these
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    # -- cookies --------------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        """Whether cookies get the Secure flag: the request came over TLS, or the public URL is https."""
        return request.url.scheme == "https" or self.settings.public_base_url.startswith("https://")

    def set_cookie(self, response: Response, request: Request, name: str, value: str, path: str) -> None:
        response.set_cookie(name, value, path=path, httponly=True, samesite="lax", secure=self.secure(request))

    # -- rendering ------------------------------------------------------------------------

    def render(self, request: Request, template: str, who: Who | None, *, status: int = 200,
               headers: dict[str, str] | None = None, **values: Any) -> HTMLResponse:
        language = who.language if who is not None else browser_language(request.headers.get("accept-language", ""))
        page = self.env.get_template(template).render(
            t=strings_for(language), who=who, root=root(request), **values)
        return HTMLResponse(page, status_code=status, headers=headers)

    async def error_page(self, request: Request, exc: Exception) -> Response:
        """The one place that turns refusals (and the router's 404 and 405) into answers."""
        if isinstance(exc, Refused):
            status, location, headers = exc.status, exc.location, exc.headers
        elif isinstance(exc, HTTPException):
            status, location, headers = exc.status_code, "", dict(exc.headers or {})
        else:
            raise exc
        if location:
            return RedirectResponse(location, status_code=status, headers=headers)
        who = request.state.who if hasattr(request.state, "who") else None
        return self.render(request, "error.html", who, status=status, headers=headers, status_code=status)

    # -- who is asking --------------------------------------------------------------------

    async def signed_in(self, request: Request) -> Who:
        """The signed-in user; a browser without a live session is sent to the login page."""
        who = await run_in_threadpool(self._session, request.cookies.get(SESSION_COOKIE, ""))
        if who is None:
            raise Refused(303, location=root(request) + "/login")
        request.state.who = who
        return who

    def _session(self, token: str) -> Who | None:
        with self.store.read() as session:
            found = admin_sessions.session_by_token(session, token, utcnow())
            if found is None:
                return None
            row, user = found
            return Who(user.id, user.tenant_id, user.login, user.role, user.language, row.csrf_secret)

    async def posted(self, request: Request) -> tuple[Who, dict[str, str]]:
        """The signed-in user and their form, after its CSRF token was checked: 403 otherwise."""
        who = await run_in_threadpool(self._session, request.cookies.get(SESSION_COOKIE, ""))
        if who is None:
            raise Refused(403)
        request.state.who = who
        form = await read_form(request)
        if not same_token(form.get("csrf", ""), who.csrf):
            raise Refused(403)
        return who, form


def require_admin(who: Who) -> None:
    if not who.is_admin:
        raise Refused(403)


def same_token(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form (the only kind the pages send), at most FORM_LIMIT bytes; a POST without
    a body is an empty form (and so one without a CSRF token)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise Refused(413)
    if kind != "application/x-www-form-urlencoded" and (kind or body):
        raise Refused(415)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400) from exc
    return dict(parse_qsl(text, keep_blank_values=True))
