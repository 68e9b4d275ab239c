"""Starlette app factory: /dav (Radicale behind the gate), /api/v1, /admin, /.well-known/caldav, /healthz,
/metrics."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from a2wsgi import WSGIMiddleware
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from bridge.settings import Settings
from bridge.store.db import Store
from bridge.web.admin import create_admin
from bridge.web.api import create_api
from bridge.web.dav import DavGate
from bridge.web.dav_booking import BookingEdits
from bridge.web.dav_collection import CalendarGuard
from bridge.web.dav_move import MoveCheck
from bridge.web.dav_put import ItemPut
from bridge.web.dav_query import ExpandQuery
from bridge.web.dav_report import FreeBusyReport
from bridge.web.hooks import create_hooks
from bridge.web.metrics import metrics_endpoint
from bridge.web.radicale_app import build_radicale

log = logging.getLogger(__name__)


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The web app; ``store`` is created from the settings unless one is passed (tests share one)."""
    store = store or Store(settings.effective_database_url, pool_size=settings.db_pool_size)
    radicale = build_radicale(settings, store)
    booking_edits = BookingEdits(store, settings, radicale.auth, radicale.rights)
    dav = DavGate(WSGIMiddleware(radicale.app, workers=max(4, settings.db_pool_size)),  # type: ignore[arg-type]
                  max_body_bytes=settings.max_body_bytes,
                  item_put=ItemPut(store, settings, radicale.auth, radicale.rights, booking_edits),
                  free_busy=FreeBusyReport(store, settings, radicale.auth, radicale.rights),
                  expand_query=ExpandQuery(store, radicale.auth, radicale.rights),
                  booking_edits=booking_edits, move_check=MoveCheck(store, radicale.auth, radicale.rights),
                  calendar_guard=CalendarGuard(store, settings, radicale.auth, radicale.rights))

    async def well_known(request: Request) -> Response:
        return RedirectResponse("/dav/", status_code=301)

    async def root(request: Request) -> Response:
        """A browser at the bare host goes to the admin page; a CalDAV client given only the host
        (Apple Calendar's PROPFIND /) to the DAV root, where it finds its principal."""
        if request.method in ("GET", "HEAD"):
            return RedirectResponse("/admin/", status_code=302)
        return RedirectResponse("/dav/", status_code=301)

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.ping)
        except SQLAlchemyError:
            log.warning("health check: database unreachable")
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What is alive once started (modules, Radicale, mappers) stays alive: moving it out of the
        # collector's view keeps full collections short (they were the p95 of a 50-calendar free/busy).
        gc.freeze()
        yield
        store.dispose()

    routes = [
        Route("/", root, methods=["GET", "HEAD", "PROPFIND", "OPTIONS", "REPORT"]),
        Route("/.well-known/caldav", well_known, methods=["GET", "HEAD", "PROPFIND", "OPTIONS"]),
        Route("/.well-known/carddav", well_known, methods=["GET", "HEAD", "PROPFIND", "OPTIONS"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint(settings, store)),
        Mount("/dav", app=dav),
        Mount("/api/v1", app=create_api(settings, store)),
        Mount("/hooks", app=create_hooks(store)),
        Mount("/admin", app=create_admin(settings, store)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = store
    app.state.settings = settings
    return app
