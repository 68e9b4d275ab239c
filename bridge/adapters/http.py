"""What every HTTP adapter means by a status or a transport failure, once the provider's own rules (sync
tokens, rate-limit reasons, Graph error codes) have had their say: the base error tree, with messages that
name the operation and the status only (never a URL, which may carry credentials, a body or event content)."""

from __future__ import annotations

from collections.abc import Collection

import httpx

from bridge.adapters.base import (
    AdapterError,
    AuthExpired,
    Permanent,
    PreconditionFailed,
    RemoteNotFound,
    Transient,
)


def status_error(message: str, status: int, *, auth: Collection[int] = (401,)) -> AdapterError:
    """The error for a refused request: ``auth`` the statuses that mean the login no longer works
    (401 everywhere; 403 too where the provider uses it so), gone and precondition, then server and client."""
    if status in auth:
        return AuthExpired(message)
    if status in (404, 410):
        return RemoteNotFound(message)
    if status == 412:
        return PreconditionFailed(message)
    if status >= 500:
        return Transient(message)
    return Permanent(message)


def transport_error(what: str, exc: httpx.HTTPError | httpx.InvalidURL) -> AdapterError:
    """A request that got no usable answer: a URL that cannot work is permanent, the network is transient."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.TooManyRedirects | httpx.InvalidURL):
        return Permanent(f"{what}: {type(exc).__name__}")
    return Transient(f"{what}: {type(exc).__name__}")
