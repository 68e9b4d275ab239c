"""RFC 9457 problem details: every error of /api/v1 is one of these, mapped in one table."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.store.errors import AlreadyExists, ItemExists, NotFound, StoreError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://calbridge.org/problems/"


class Problem(Exception):
    """An error answer: ``kind`` names the problem type (its URI is TYPE_BASE + kind)."""

    def __init__(self, status: int, kind: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self, instance: str = "") -> Response:
        body: dict[str, Any] = {"type": TYPE_BASE + self.kind, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return JSONResponse(body, status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers)


def not_found(what: str) -> Problem:
    """The same answer whether the object does not exist or belongs to another tenant."""
    return Problem(404, "not-found", "Not found", f"no such {what}")


def invalid(detail: str, **extra: Any) -> Problem:
    return Problem(422, "invalid-request", "Invalid request", detail, **extra)


def from_store_error(error: StoreError) -> Problem:
    """The one table from store errors to problems."""
    if isinstance(error, NotFound):
        return not_found(error.what)
    if isinstance(error, AlreadyExists | ItemExists):
        return Problem(409, "already-exists", "Already exists", str(error))
    return Problem(409, "conflict", "Conflict", str(error))


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response(request.url.path)


async def handle_store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    return from_store_error(exc).response(request.url.path)


async def handle_not_found(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 (unknown route or method) as problems too."""
    status = getattr(exc, "status_code", 404)
    if status == 405:
        return Problem(405, "method-not-allowed", "Method not allowed").response(request.url.path)
    return not_found("resource").response(request.url.path)
