"""Sign-in and sign-out of /admin.

The password is checked as the CalDAV auth checks it (argon2id, and a dummy verification when
the login does not exist, so both cost the same). A login or a client address with
MAX_FAILURES failed attempts in the window gets 429 with Retry-After, whether or not the
login exists; the answer to a wrong password never says which part was wrong. (Attempts in
flight at the same moment are each checked before any is counted, so a burst can pass the
limit by the number of its parallel requests; each still costs an argon2id verification.)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.store import admin_sessions, users
from bridge.store.models import utcnow
from bridge.web.admin.context import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    AdminContext,
    Refused,
    new_token,
    read_form,
    root,
    same_token,
)

log = logging.getLogger(__name__)
SIGN_IN_ROLES = ("admin", "member")  # the booking engine's service users have tokens, not pages


@dataclass(frozen=True)
class Attempt:
    token: str = ""  # the new session's cookie token, on success
    retry_after: int = 0  # seconds, when throttled


def routes(ctx: AdminContext) -> list[Route]:
    async def start(request: Request) -> Response:
        await ctx.signed_in(request)
        return RedirectResponse(root(request) + "/calendars", status_code=303)

    async def login_form(request: Request) -> Response:
        return _form(ctx, request)

    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not same_token(form.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, "")):
            raise Refused(403)
        login_name = form.get("login", "").strip()
        address = request.client.host if request.client else ""
        attempt = await run_in_threadpool(_sign_in, ctx, login_name, form.get("password", ""), address)
        if attempt.retry_after:
            return _form(ctx, request, status=429, login=login_name, headers={"Retry-After": str(attempt.retry_after)},
                         error=("login_throttled", math.ceil(attempt.retry_after / 60)))
        if not attempt.token:
            return _form(ctx, request, status=401, login=login_name, error=("login_failed", 0))
        response = RedirectResponse(root(request) + "/calendars", status_code=303)
        ctx.set_cookie(response, request, SESSION_COOKIE, attempt.token, root(request) or "/")
        response.delete_cookie(LOGIN_COOKIE, path=root(request) + "/login")
        return response

    async def logout(request: Request) -> Response:
        await ctx.posted(request)
        await run_in_threadpool(_sign_out, ctx, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse(root(request) + "/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=root(request) or "/", httponly=True, samesite="lax",
                               secure=ctx.secure(request))
        return response

    return [
        Route("/", start, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


def _form(ctx: AdminContext, request: Request, *, status: int = 200, login: str = "",
          error: tuple[str, int] | None = None, headers: dict[str, str] | None = None) -> Response:
    """The login form with a double-submit token (the browser's, or a new one)."""
    token = request.cookies.get(LOGIN_COOKIE) or new_token()
    response = ctx.render(request, "login.html", None, status=status, headers=headers, csrf=token, login=login,
                          error=error)
    ctx.set_cookie(response, request, LOGIN_COOKIE, token, root(request) + "/login")
    return response


def _sign_in(ctx: AdminContext, login: str, password: str, address: str) -> Attempt:
    now = utcnow()
    keys = admin_sessions.throttle_keys(login, address)
    with ctx.store.read() as session:
        blocked = admin_sessions.blocked_until(session, keys, now)
        user = users.user_by_login(session, login) if login else None
    if blocked is not None:
        log.warning("admin sign-in refused: too many failed attempts for the login or the address")
        return Attempt(retry_after=max(1, math.ceil((blocked - now).total_seconds())))
    password_hash = user.password_hash if user is not None and user.role in SIGN_IN_ROLES else None
    if not ctx.credentials.check(login, password, password_hash):
        with ctx.store.write() as session:
            admin_sessions.record_failure(session, keys, now)
        return Attempt()
    assert user is not None
    with ctx.store.write() as session:
        admin_sessions.clear_failures(session, keys[0])
        _, token = admin_sessions.create_session(session, user, now)
    return Attempt(token=token)


def _sign_out(ctx: AdminContext, token: str) -> None:
    with ctx.store.write() as session:
        admin_sessions.end_session(session, token)
