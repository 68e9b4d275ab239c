"""The users page (admins only): create, change and remove the tenant's admins and employees; and every
user's own account page (language, e-mail, password). A password is never rendered back, not even into
the form after a mistake; a changed password ends the user's other sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge import removal
from bridge.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from bridge.removal import Consequences
from bridge.store import admin_sessions, users
from bridge.store.errors import AlreadyExists
from bridge.store.models import Tenant, User
from bridge.web.admin.context import SESSION_COOKIE, AdminContext, Refused, Who, not_found, require_admin, root

CREATABLE_ROLES = ("member", "admin")
KEPT_FIELDS = ("login", "email", "role", "language")  # what a form with a mistake shows again


def routes(ctx: AdminContext) -> list[Route]:
    async def list_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        require_admin(who)
        return await _page(ctx, request, who)

    async def create(request: Request) -> Response:
        who, form = await ctx.posted(request)
        require_admin(who)
        error = await run_in_threadpool(_create, ctx, who, form)
        if error:
            return await _page(ctx, request, who, status=400, error=error, entered=form)
        return RedirectResponse(f"{root(request)}/users", status_code=303)

    async def remove(request: Request) -> Response:
        who, form = await ctx.posted(request)
        require_admin(who)
        user_id = request.path_params["user_id"]
        asked = await run_in_threadpool(_remove, ctx, who, user_id, form.get("confirmed") == "yes")
        if asked is not None:  # bookings or connections at stake: say so first
            name, consequences = asked
            return ctx.render(request, "removal.html", who, kind="user", name=name, consequences=consequences,
                              action=f"{root(request)}/users/{user_id}/delete", back=f"{root(request)}/users")
        return RedirectResponse(f"{root(request)}/users", status_code=303)

    async def edit_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        require_admin(who)
        user = await run_in_threadpool(_editable, ctx, who, request.path_params["user_id"])
        return _edit_form(ctx, request, who, user)

    async def save(request: Request) -> Response:
        who, form = await ctx.posted(request)
        require_admin(who)
        user_id = request.path_params["user_id"]
        error = await run_in_threadpool(_save, ctx, who, user_id, form)
        if error:
            user = await run_in_threadpool(_editable, ctx, who, user_id)
            return _edit_form(ctx, request, who, user, status=400, error=error)
        return RedirectResponse(f"{root(request)}/users", status_code=303)

    async def account_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        user = await run_in_threadpool(_editable, ctx, who, who.user_id)
        return _account_form(ctx, request, who, user, saved=request.query_params.get("saved") == "1")

    async def save_account(request: Request) -> Response:
        who, form = await ctx.posted(request)
        error = await run_in_threadpool(_save_own, ctx, who, form, request.cookies.get(SESSION_COOKIE, ""))
        if error:
            user = await run_in_threadpool(_editable, ctx, who, who.user_id)
            return _account_form(ctx, request, who, user, status=400, error=error)
        return RedirectResponse(f"{root(request)}/account?saved=1", status_code=303)

    return [
        Route("/users", list_page, methods=["GET"]),
        Route("/users", create, methods=["POST"]),
        Route("/users/{user_id:int}", edit_page, methods=["GET"]),
        Route("/users/{user_id:int}", save, methods=["POST"]),
        Route("/users/{user_id:int}/delete", remove, methods=["POST"]),
        Route("/account", account_page, methods=["GET"]),
        Route("/account", save_account, methods=["POST"]),
    ]


async def _page(ctx: AdminContext, request: Request, who: Who, *, status: int = 200, error: str = "",
                entered: dict[str, str] | None = None) -> Response:
    rows = await run_in_threadpool(_users, ctx, who)
    entered = entered or {}
    return ctx.render(request, "users.html", who, status=status, users=rows, error=error,
                      roles=CREATABLE_ROLES, languages=users.LANGUAGES,
                      entered={key: entered.get(key, "") for key in KEPT_FIELDS})


def _users(ctx: AdminContext, who: Who) -> list[User]:
    with ctx.store.read() as session:
        return users.users_of_tenant(session, who.tenant_id)


def _create(ctx: AdminContext, who: Who, form: dict[str, str]) -> str:
    """The key of the message saying what is wrong with the form, or "" once the user exists. The store's
    own rules are checked here first, so that the answer is in the user's language."""
    login, email = form.get("login", "").strip(), form.get("email", "").strip()
    role, language, password = form.get("role", "member"), form.get("language", "de"), form.get("password", "")
    if not users.LOGIN_PATTERN.match(login):
        return "form_login"
    if not users.EMAIL_PATTERN.match(email):
        return "form_email"
    if role not in CREATABLE_ROLES or language not in users.LANGUAGES:
        return "form_choice"
    if len(password) < MIN_PASSWORD_LENGTH:
        return "form_password"
    password_hash = hash_password(password)
    with ctx.store.write() as session:
        tenant = session.get(Tenant, who.tenant_id)
        assert tenant is not None
        try:
            users.create_user(session, tenant, login=login, email=email, password_hash=password_hash, role=role,
                              language=language)
        except AlreadyExists:
            return "form_user_exists"
    return ""


def _remove(ctx: AdminContext, who: Who, user_id: int, confirmed: bool) -> tuple[str, Consequences] | None:
    """Remove the user (bridge.removal); or, when that would end bookings or connections and the admin has not
    confirmed it yet, the login and what the removal would end."""
    with ctx.store.write() as session:
        user = session.get(User, user_id)
        if user is None or user.tenant_id != who.tenant_id or user.removed_at is not None:
            raise not_found()
        if user.id == who.user_id:
            raise Refused(400)  # an admin cannot remove themselves (and so lock the tenant out)
        try:
            done = removal.remove_user(session, user, datetime.now(UTC), confirmed=confirmed,
                                       changes_kept_days=ctx.settings.sync_token_max_age_days,
                                       keys=removal.ChannelKeys.from_settings(ctx.settings))
        except removal.ConfirmationNeeded as exc:
            return user.login, exc.consequences
    done.stop_push_channels()
    return None


@dataclass(frozen=True)
class UserView:
    id: int
    login: str
    email: str
    role: str
    language: str


def _editable(ctx: AdminContext, who: Who, user_id: int) -> UserView:
    """A user of the tenant whom these pages may change (not a service user): 404 otherwise."""
    with ctx.store.read() as session:
        user = session.get(User, user_id)
        if user is None or user.tenant_id != who.tenant_id or user.role in ("service", "removed"):
            raise not_found()
        return UserView(user.id, user.login, user.email, user.role, user.language)


def _edit_form(ctx: AdminContext, request: Request, who: Who, user: UserView, *, status: int = 200,
               error: str = "") -> Response:
    return ctx.render(request, "user.html", who, status=status, user=user, error=error, roles=CREATABLE_ROLES,
                      languages=users.LANGUAGES)


def _account_form(ctx: AdminContext, request: Request, who: Who, user: UserView, *, status: int = 200,
                  error: str = "", saved: bool = False) -> Response:
    return ctx.render(request, "account.html", who, status=status, user=user, error=error, saved=saved,
                      languages=users.LANGUAGES)


def _new_password(form: dict[str, str]) -> tuple[str | None, str]:
    """(the new password's hash or None when none was given, the key of what is wrong with it)."""
    password = form.get("password", "")
    if not password:
        return None, ""
    if len(password) < MIN_PASSWORD_LENGTH:
        return None, "form_password"
    return hash_password(password), ""


def _save(ctx: AdminContext, who: Who, user_id: int, form: dict[str, str]) -> str:
    """An admin changes a user of the tenant; the key of what is wrong, or "" once saved. An admin cannot take
    their own admin role away (and so lock the tenant out), nor set their own password here without the current
    one."""
    _editable(ctx, who, user_id)
    email, role, language = form.get("email", "").strip(), form.get("role", ""), form.get("language", "")
    if not users.EMAIL_PATTERN.match(email):
        return "form_email"
    if role not in CREATABLE_ROLES or language not in users.LANGUAGES:
        return "form_choice"
    if user_id == who.user_id and role != "admin":
        return "form_own_role"
    if user_id == who.user_id and form.get("password"):
        return "form_own_password"  # 'Mein Konto', which asks for the current one
    password_hash, error = _new_password(form)
    if error:
        return error
    with ctx.store.write() as session:
        user = session.get(User, user_id)
        assert user is not None
        demoted = user.role == "admin" and role != "admin"
        users.update_user(session, user, email=email, role=role, language=language, password_hash=password_hash)
        if password_hash is not None or demoted:  # the old password, or the old rights, sign no one in
            admin_sessions.end_other_sessions(session, user_id)
    return ""


def _save_own(ctx: AdminContext, who: Who, form: dict[str, str], own_token: str) -> str:
    """A user changes their own language, address and password (the current one is asked for a new one)."""
    email, language = form.get("email", "").strip(), form.get("language", "")
    if not users.EMAIL_PATTERN.match(email):
        return "form_email"
    if language not in users.LANGUAGES:
        return "form_choice"
    password_hash, error = _new_password(form)
    if error:
        return error
    with ctx.store.write() as session:
        user = session.get(User, who.user_id)
        assert user is not None
        if password_hash is not None and not verify_password(user.password_hash, form.get("current", "")):
            return "form_current_password"
        users.update_user(session, user, email=email, language=language, password_hash=password_hash)
        if password_hash is not None:
            admin_sessions.end_other_sessions(session, user.id, own_token)
    return ""
