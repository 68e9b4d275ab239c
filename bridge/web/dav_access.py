"""Who is asking and for which calendar, for the requests the /dav gate answers itself.

The gate decides exactly as Radicale would, with the same auth and rights plugin objects,
and declines (None) whenever it cannot, so that Radicale answers with its delay and status.
"""

from __future__ import annotations

import base64
import binascii

from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights


def authenticated(auth: SqlAuth, header: str) -> str | None:
    """The login of valid Basic credentials, else None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not colon or not login or not auth.check(login, password):
        return None
    return login


def may(rights: SqlRights, login: str, owner: str, slug: str, permission: str) -> bool:
    """Whether ``login`` has ``permission`` ("r" or "w") on the calendar /<owner>/<slug>/."""
    return permission in rights.authorization(login, set(), f"/{owner}/{slug}/")


def segments(path: str, count: int, trailing_slash: bool | None) -> list[str] | None:
    """The ``count`` plain segments of ``path``; None for anything Radicale would rewrite first."""
    if trailing_slash is True and not path.endswith("/"):
        return None
    if trailing_slash is False and path.endswith("/"):
        return None
    parts = path.strip("/").split("/") if path.startswith("/") else []
    if len(parts) != count or "//" in path:
        return None
    if any(part in ("", ".", "..") or "\\" in part for part in parts):
        return None
    return parts
