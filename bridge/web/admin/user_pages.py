"""The users page (admins only): create and remove the tenant's admins and employees.
A password is never rendered back, not even into the form after a mistake."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.passwords import MIN_PASSWORD_LENGTH, hash_password
from bridge.store import users
from bridge.store.errors import AlreadyExists
from bridge.store.models import Tenant, User
from bridge.web.admin.context import AdminContext, Refused, Who, not_found, require_admin, root

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
        who, _ = await ctx.posted(request)
        require_admin(who)
        await run_in_threadpool(_remove, ctx, who, request.path_params["user_id"])
        return RedirectResponse(f"{root(request)}/users", status_code=303)

    return [
        Route("/users", list_page, methods=["GET"]),
        Route("/users", create, methods=["POST"]),
        Route("/users/{user_id:int}/delete", remove, methods=["POST"]),
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


def _remove(ctx: AdminContext, who: Who, user_id: int) -> None:
    with ctx.store.write() as session:
        user = session.get(User, user_id)
        if user is None or user.tenant_id != who.tenant_id:
            raise not_found()
        if user.id == who.user_id:
            raise Refused(400)  # an admin cannot remove themselves (and so lock the tenant out)
        users.delete_user(session, user)
