"""Connecting a calendar to an external one, as the product's help page describes it: choose the provider,
connect (the provider's sign-in for Google and Microsoft; a form whose account is tested at once for
Exchange, iCloud, CalDAV and an ICS feed), then choose the remote calendar. The connection is stored only at
the last step, with the provider's default options; its page (connection_pages) then sets them.

The OAuth redirect comes back to ``/admin/oauth/callback`` on whichever web process the browser reaches:
the grant's PKCE verifier travels in a sealed cookie (bridge.web.admin.pending) bound to the signed-in user,
the calendar and fifteen minutes, and so do the tested credentials between the last two steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge import adapters
from bridge.adapters.base import AdapterError, AuthExpired, RemoteCalendar, RemoteNotFound, Transient
from bridge.store.models import Calendar
from bridge.sync import authorize, connection_admin
from bridge.sync.authorize import AuthorizationProblem
from bridge.sync.connection_admin import AlreadyConnected, ConnectionProblem, PrivateAddress
from bridge.web.admin import pending
from bridge.web.admin.calendar_pages import visible_calendar
from bridge.web.admin.context import AdminContext, Refused, Who, not_found, root
from bridge.web.admin.headers import content_security_policy

PROVIDERS = ("google", "microsoft", "exchange", "icloud", "caldav", "ics")  # in the order the page offers them
OAUTH_COOKIE = "calbridge_oauth"
FIELDS = ("url", "username", "email", "auth")  # what a failed test shows again (never the password)


class FormProblem(ConnectionProblem):
    """The form lacks something; ``key`` names the message in the user's language."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class SignInFailed(ConnectionProblem):
    """The provider's redirect did not bring a grant: consent refused, a forged state, a code not redeemed."""


@dataclass(frozen=True)
class Choice:
    """A calendar of the tested account, as the picker offers it."""

    id: str
    name: str
    read_only: bool


def routes(ctx: AdminContext) -> list[Route]:
    async def choose(request: Request) -> Response:
        who = await ctx.signed_in(request)
        calendar = await run_in_threadpool(_calendar, ctx, who, request.path_params["calendar_id"])
        provider = request.query_params.get("provider", "")
        if provider and provider not in _offered():
            raise not_found()
        return _form(ctx, request, who, calendar, provider)

    async def test_account(request: Request) -> Response:
        who, form = await ctx.posted(request)
        calendar = await run_in_threadpool(_calendar, ctx, who, request.path_params["calendar_id"])
        provider = form.get("provider", "")
        if provider not in _offered() or provider in authorize.OAUTH_PROVIDERS:
            raise Refused(400)
        try:
            account = _account(ctx, provider, form)
            found = await run_in_threadpool(partial(connection_admin.check_account, account,
                                                    private_networks=ctx.settings.provider_private_networks))
        except ConnectionProblem as exc:
            return _form(ctx, request, who, calendar, provider, problem=exc, entered=form, status=422)
        except ValueError:  # an address no client can parse (httpx, idna)
            return _form(ctx, request, who, calendar, provider, problem=FormProblem("connect_err_url"), entered=form,
                         status=422)
        return _picker(ctx, request, who, calendar, account, found)

    async def start_sign_in(request: Request) -> Response:
        who, form = await ctx.posted(request)
        calendar = await run_in_threadpool(_calendar, ctx, who, request.path_params["calendar_id"])
        provider = form.get("provider", "")
        if provider not in authorize.OAUTH_PROVIDERS or provider not in _offered():
            raise Refused(400)
        redirect_uri = _callback_url(ctx, request)
        try:
            app = authorize.oauth_app(provider, ctx.settings)
            grant = await run_in_threadpool(adapters.AUTHORIZERS[provider], app, redirect_uri)
        except (AuthorizationProblem, AdapterError) as exc:
            return _form(ctx, request, who, calendar, provider, problem=exc, status=422)
        sealed = pending.seal(ctx.keys.get(), who, calendar.id,
                              {"provider": provider, "redirect_uri": redirect_uri, "grant": grant.saved()})
        answer = RedirectResponse(grant.url, status_code=303)
        ctx.set_cookie(answer, request, OAUTH_COOKIE, sealed, root(request) + "/oauth")
        return answer

    async def callback(request: Request) -> Response:
        who = await ctx.signed_in(request)
        opened = pending.unseal(ctx.keys.get(), who, request.cookies.get(OAUTH_COOKIE, ""))
        if opened is None:
            return ctx.render(request, "error.html", who, status=400, status_code=400, message="pick_expired")
        calendar_id, data = opened
        calendar = await run_in_threadpool(_calendar, ctx, who, calendar_id)
        provider = str(data["provider"])
        try:
            app = authorize.oauth_app(provider, ctx.settings)
            account = await run_in_threadpool(_signed_in, app, provider, data, str(request.url))
            found = await run_in_threadpool(connection_admin.check_account, account)
        except (AuthorizationProblem, ConnectionProblem, AdapterError) as exc:
            answer = _form(ctx, request, who, calendar, provider, problem=exc, status=422)
        else:
            answer = _picker(ctx, request, who, calendar, account, found)
        answer.delete_cookie(OAUTH_COOKIE, path=root(request) + "/oauth")
        return answer

    async def finish(request: Request) -> Response:
        who, form = await ctx.posted(request)
        calendar_id = request.path_params["calendar_id"]
        await run_in_threadpool(_calendar, ctx, who, calendar_id)
        opened = pending.unseal(ctx.keys.get(), who, form.get("pending", ""), calendar_id)
        if opened is None:
            return ctx.render(request, "error.html", who, status=400, status_code=400, message="pick_expired")
        _, data = opened
        try:
            connection_id = await run_in_threadpool(_create, ctx, who, calendar_id, data, form.get("remote", ""))
        except AlreadyConnected as exc:  # sent twice (a double click, the back button): the one made first
            return RedirectResponse(f"{root(request)}/connections/{exc.connection_id}", status_code=303)
        except ConnectionProblem as exc:
            calendar = await run_in_threadpool(_calendar, ctx, who, calendar_id)
            return _form(ctx, request, who, calendar, str(data["provider"]), problem=exc, status=422)
        return RedirectResponse(f"{root(request)}/connections/{connection_id}", status_code=303)

    return [
        Route("/calendars/{calendar_id:int}/connect", choose, methods=["GET"]),
        Route("/calendars/{calendar_id:int}/connect", test_account, methods=["POST"]),
        Route("/calendars/{calendar_id:int}/sign-in", start_sign_in, methods=["POST"]),
        Route("/calendars/{calendar_id:int}/connect/finish", finish, methods=["POST"]),
        Route("/oauth/callback", callback, methods=["GET"]),
    ]


def _offered() -> tuple[str, ...]:
    return tuple(name for name in PROVIDERS if name in connection_admin.PROVIDERS)


def _calendar(ctx: AdminContext, who: Who, calendar_id: int) -> Calendar:
    with ctx.store.read() as session:
        calendar, _ = visible_calendar(session, who, calendar_id)
        session.expunge(calendar)
        return calendar


def _callback_url(ctx: AdminContext, request: Request) -> str:
    """Where the provider sends the browser back: under the configured public address if there is one (that is
    the address registered with the provider), else the one this browser used."""
    if ctx.settings.base_url:
        return f"{ctx.settings.public_base_url}/admin/oauth/callback"
    return f"{request.url.scheme}://{request.url.netloc}{root(request)}/oauth/callback"


def _account(ctx: AdminContext, provider: str, form: dict[str, str]) -> adapters.Account:
    """The account the form describes; ConnectionProblem for what is missing."""
    url, username = form.get("url", "").strip(), form.get("username", "").strip()
    password = form.get("password", "")  # a password may begin or end with a space
    ca_file = ctx.settings.provider_ca_file or None
    if url and not url.startswith(("https://", "http://")) or provider in ("caldav", "ics") and not url:
        raise FormProblem("connect_err_url")
    if provider in ("caldav", "icloud", "exchange") and not (username and password):
        raise FormProblem("connect_err_login")
    if password and not username:
        raise FormProblem("connect_err_login")
    if provider == "exchange":
        email, auth = form.get("email", "").strip(), form.get("auth", "ntlm")
        if "@" not in email or auth not in connection_admin.EXCHANGE_AUTH:
            raise FormProblem("connect_err_mailbox")
        return connection_admin.exchange_account(url, "", username, password, email=email, auth=auth, ca_file=ca_file,
                                                 login_url=ctx.settings.microsoft_login_url)
    return connection_admin.new_account(provider, url, "", username, password, ca_file=ca_file)


def _signed_in(app: Any, provider: str, data: dict[str, Any], redirect_url: str) -> adapters.Account:
    """The account of a finished OAuth grant: the provider's redirect redeemed for tokens."""
    grant = adapters.AUTHORIZERS[provider](app, str(data["redirect_uri"]), data["grant"])
    try:
        credentials = grant.complete(redirect_url)
    except AdapterError as exc:
        raise SignInFailed(f"the sign-in did not complete: {exc}") from exc
    return adapters.Account(provider, app.api_url, "", credentials, ca_file=app.ca_file)


def problem_key(problem: Exception) -> str:
    """The strings key saying, in the user's language, why connecting failed; the exception's own (English)
    message is shown beside it as the detail for whoever helps."""
    if isinstance(problem, FormProblem):
        return problem.key
    if isinstance(problem, AuthorizationProblem):
        return "connect_err_not_configured"
    if isinstance(problem, PrivateAddress):
        return "connect_err_private"
    cause = problem if isinstance(problem, AdapterError) else problem.__cause__
    if isinstance(cause, AuthExpired):
        return "connect_err_signin" if isinstance(problem, SignInFailed) else "connect_err_credentials"
    if isinstance(cause, RemoteNotFound):
        return "connect_err_not_found"
    if isinstance(cause, Transient):
        return "connect_err_unreachable"
    return "connect_err_refused"


def _form(ctx: AdminContext, request: Request, who: Who, calendar: Calendar, provider: str, *,
          problem: Exception | None = None, entered: dict[str, str] | None = None, status: int = 200) -> Response:
    entered = entered or {}
    headers = {}
    if provider in authorize.OAUTH_PROVIDERS:  # the sign-in form is redirected to the provider
        headers["Content-Security-Policy"] = content_security_policy(authorize.sign_in_origin(provider, ctx.settings))
    return ctx.render(request, "connect.html", who, status=status, headers=headers, calendar=calendar,
                      provider=provider, providers=_offered(), oauth=authorize.OAUTH_PROVIDERS,
                      error=problem_key(problem) if problem is not None else "",
                      detail="" if problem is None or isinstance(problem, FormProblem) else str(problem),
                      entered={name: entered.get(name, "") for name in FIELDS})


def _picker(ctx: AdminContext, request: Request, who: Who, calendar: Calendar, account: adapters.Account,
            found: list[RemoteCalendar]) -> Response:
    sealed = pending.seal(ctx.keys.get(), who, calendar.id, {
        "provider": account.provider, "server_url": account.server_url, "credentials": dict(account.credentials)})
    choices = [Choice(c.id, c.name or c.id, c.read_only) for c in found]
    return ctx.render(request, "pick.html", who, calendar=calendar, provider=account.provider, choices=choices,
                      sealed=sealed)


def _create(ctx: AdminContext, who: Who, calendar_id: int, data: dict[str, Any], remote: str) -> int:
    """Store the connection to ``remote`` once the account shows it still has it; its id."""
    provider = str(data["provider"])
    account = adapters.Account(provider, str(data["server_url"]), remote, dict(data["credentials"]),
                               ca_file=ctx.settings.provider_ca_file or None)
    found = connection_admin.check_account(account)
    chosen = next((c for c in found if c.id == remote), None)
    if chosen is None:
        raise FormProblem("connect_err_remote")
    checked = connection_admin.Checked(chosen.id, chosen.name)
    with ctx.store.write() as session:
        calendar, _ = visible_calendar(session, who, calendar_id)
        connection = connection_admin.create(
            session, calendar, provider, checked, server_url=account.server_url, credentials=account.credentials,
            direction="inbound" if chosen.read_only else None,
            options=connection_admin.initial_options(provider, {}), secrets=ctx.keys.get())
        return connection.id
