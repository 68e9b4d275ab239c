"""/admin: the server-rendered pages for the people running a practice or salon (Jinja2, de and en,
no JavaScript build; a few lines of plain JavaScript for the copy buttons).

Every answer passes through :class:`SecurityHeaders`; every handler starts with
``ctx.signed_in`` (pages) or ``ctx.posted`` (forms, CSRF-checked), and every lookup is
scoped to the signed-in user's tenant, with 404 for anything outside it.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from bridge.settings import Settings
from bridge.store.db import Store
from bridge.web.admin import (
    busy_pages,
    calendar_pages,
    connect_pages,
    connection_pages,
    login_pages,
    token_pages,
    user_pages,
)
from bridge.web.admin.context import AdminContext, Refused
from bridge.web.admin.headers import SecurityHeaders

STATIC = Path(__file__).with_name("static")


def admin_routes(ctx: AdminContext) -> list[BaseRoute]:
    """Every route of /admin (the isolation tests enumerate these)."""
    return [
        *login_pages.routes(ctx),
        *calendar_pages.routes(ctx),
        *user_pages.routes(ctx),
        *token_pages.routes(ctx),
        *busy_pages.routes(ctx),
        *connect_pages.routes(ctx),
        *connection_pages.routes(ctx),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def create_admin(settings: Settings, store: Store) -> SecurityHeaders:
    ctx = AdminContext(settings, store)
    app = Starlette(routes=admin_routes(ctx),
                    exception_handlers={Refused: ctx.error_page, HTTPException: ctx.error_page})
    return SecurityHeaders(app)
