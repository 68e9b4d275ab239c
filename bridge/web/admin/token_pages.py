"""The service tokens page (admins only): issue and revoke the booking engine's tokens.
A new token is shown once, in the answer to the form that created it; only its hash is kept."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.store import tokens
from bridge.store.errors import NotFound
from bridge.store.models import ServiceToken, Tenant, utcnow
from bridge.web.admin.context import AdminContext, Who, not_found, require_admin, root


def routes(ctx: AdminContext) -> list[Route]:
    async def list_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        require_admin(who)
        return await _page(ctx, request, who)

    async def create(request: Request) -> Response:
        who, form = await ctx.posted(request)
        require_admin(who)
        secret, error = await run_in_threadpool(_create, ctx, who, form.get("name", ""),
                                                form.get("scope", "engine"))
        return await _page(ctx, request, who, status=400 if error else 201, new_secret=secret, error=error,
                           name=form.get("name", "") if error else "")

    async def revoke(request: Request) -> Response:
        who, _ = await ctx.posted(request)
        require_admin(who)
        await run_in_threadpool(_revoke, ctx, who, request.path_params["token_id"])
        return RedirectResponse(f"{root(request)}/tokens", status_code=303)

    return [
        Route("/tokens", list_page, methods=["GET"]),
        Route("/tokens", create, methods=["POST"]),
        Route("/tokens/{token_id:int}/revoke", revoke, methods=["POST"]),
    ]


async def _page(ctx: AdminContext, request: Request, who: Who, *, status: int = 200, new_secret: str = "",
                error: str = "", name: str = "") -> Response:
    rows = await run_in_threadpool(_tokens, ctx, who)
    return ctx.render(request, "tokens.html", who, status=status, tokens=rows, scopes=tokens.SCOPES,
                      new_secret=new_secret, error=error, name=name)


def _tokens(ctx: AdminContext, who: Who) -> list[ServiceToken]:
    with ctx.store.read() as session:
        return tokens.tokens_of_tenant(session, who.tenant_id)


def _create(ctx: AdminContext, who: Who, name: str, scope: str) -> tuple[str, str]:
    """(the new token, "") or ("", the key of the message saying what is wrong)."""
    if scope not in tokens.SCOPES:
        return "", "form_choice"
    if not 1 <= len(name.strip()) <= 120:
        return "", "form_token_name"
    with ctx.store.write() as session:
        tenant = session.get(Tenant, who.tenant_id)
        assert tenant is not None
        _, secret = tokens.create_token(session, tenant, name, scope)
    return secret, ""


def _revoke(ctx: AdminContext, who: Who, token_id: int) -> None:
    with ctx.store.write() as session:
        try:
            tokens.revoke_token(session, who.tenant_id, token_id, utcnow())
        except NotFound:
            raise not_found() from None
