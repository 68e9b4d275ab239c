"""/api/v1: the booking engine's JSON API (free/busy, free slots, bookings, provisioning, connections,
the change feed)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.settings import Settings
from bridge.store.db import Store
from bridge.store.errors import StoreError
from bridge.web.api import (
    booking_routes,
    busy_routes,
    change_routes,
    connection_routes,
    openapi,
    provisioning_routes,
)
from bridge.web.api.context import Api
from bridge.web.api.problems import Problem, handle_not_found, handle_problem, handle_store_error


def create_api(settings: Settings, store: Store) -> Starlette:
    api = Api(settings, store)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi.document())

    routes = [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *busy_routes.routes(api),
        *booking_routes.routes(api),
        *provisioning_routes.routes(api),
        *connection_routes.routes(api),
        *change_routes.routes(api),
    ]
    return Starlette(routes=routes, exception_handlers={
        Problem: handle_problem, StoreError: handle_store_error, HTTPException: handle_not_found})
