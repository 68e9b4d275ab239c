"""Bearer service tokens for /api/v1: each request acts for exactly one tenant."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from bridge.store import tokens
from bridge.store.db import Store
from bridge.web.api.problems import Problem


@dataclass(frozen=True)
class Caller:
    tenant_id: int
    scope: str  # engine | admin
    token_id: int


async def caller(request: Request, store: Store) -> Caller:
    """The tenant a request acts for; 401 without a valid token (looked up off the event loop)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("a bearer token is required")
    found = await run_in_threadpool(_lookup, store, token.strip())
    if found is None:
        raise _unauthorized("the token is not valid")
    return found


def _lookup(store: Store, token: str) -> Caller | None:
    with store.read() as session:
        row = tokens.token_by_secret(session, token)
        return Caller(row.tenant_id, row.scope, row.id) if row is not None else None


def require_admin(who: Caller) -> None:
    if who.scope != "admin":
        raise Problem(403, "forbidden", "Forbidden", "this needs a token with the admin scope")


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, "unauthorized", "Unauthorized", detail)
    problem.headers["WWW-Authenticate"] = 'Bearer realm="calbridge"'
    return problem
