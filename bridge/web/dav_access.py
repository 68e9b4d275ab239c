"""Who is asking and for which calendar, for the requests the /dav gate answers itself.

The gate decides exactly as Radicale would, with the same auth and rights plugin objects,
and declines (None) whenever it cannot, so that Radicale answers with its delay and status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights


def authenticated(auth: SqlAuth, headers: Mapping[str, str]) -> str | None:
    """The login of valid Basic credentials in ``headers``, else None, read exactly as Radicale reads
    them: a stricter reading (a space after "Basic", canonical base64, UTF-8 only) let "Basic" + base64
    with a stray character past every guard of the gate while Radicale logged the user in."""
    try:
        text = _credentials(headers)
    except (binascii.Error, UnicodeError, LookupError, ValueError):
        return None
    if text is None:
        return None
    login, colon, password = text.partition(":")
    if not colon or not login or not auth.check(login, password):
        return None
    return login


def unreadable_credentials(headers: Mapping[str, str]) -> bool:
    """Whether Radicale would fail on reading the Authorization header with a 500 (base64 it cannot
    decode, no ":" in it, a charset Python does not know): the gate answers 401 instead."""
    try:
        text = _credentials(headers)
    except (binascii.Error, UnicodeError, LookupError, ValueError):
        return True
    return text is not None and ":" not in text


def _credentials(headers: Mapping[str, str]) -> str | None:
    """The decoded Basic credentials (None without any), as radicale.httputils.decode_request reads
    them: the request's charset, then UTF-8, then ISO-8859-1; an unknown charset raises LookupError."""
    header = headers.get("authorization", "")
    if not header.startswith("Basic"):
        return None
    data = base64.b64decode(header[len("Basic"):].strip().encode("ascii"))
    content_type = headers.get("content-type", "")
    charsets = []
    if "charset=" in content_type:
        charsets.append(content_type.split("charset=")[1].split(";")[0].strip())
    for charset in dict.fromkeys([*charsets, "utf-8", "iso8859-1"]):
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            continue
    raise UnicodeError("no charset decodes the credentials")


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
