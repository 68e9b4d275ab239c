"""A connection being set up, carried by the browser between two steps, sealed.

Connecting takes several requests: the account test, then the choice of the remote calendar (and,
for Google and Microsoft, the provider's redirect in between). What the next step needs (the
credentials just tested, an OAuth grant's PKCE verifier) travels in a hidden field or a cookie,
encrypted with the installation's secret keys (Fernet: encrypted and authenticated), so that any web
process can take the next step and nothing is kept server-side for a sign-in that is abandoned. A seal
names the user and the calendar it was made for and expires: another user, another calendar or a late
step gets nothing. The plain password is never rendered back into a page.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bridge.secrets import SecretError, Secrets
from bridge.web.admin.context import Who

LIFETIME_SECONDS = 15 * 60


def seal(secrets: Secrets, who: Who, calendar_id: int, data: dict[str, Any], *,
         lifetime: int = LIFETIME_SECONDS) -> str:
    body = {"user": who.user_id, "calendar": calendar_id, "expires": time.time() + lifetime, "data": data}
    return secrets.encrypt(json.dumps(body, separators=(",", ":")))


def unseal(secrets: Secrets, who: Who, sealed: str,
           calendar_id: int | None = None) -> tuple[int, dict[str, Any]] | None:
    """(calendar id, data) of a seal made for ``who`` (and ``calendar_id``, if given) that has not expired;
    None for anything else, which the caller answers by starting over."""
    if not sealed or len(sealed) > 32 * 1024:
        return None
    try:
        body = json.loads(secrets.decrypt(sealed))
    except (SecretError, ValueError):
        return None
    if body.get("user") != who.user_id or float(body.get("expires", 0)) < time.time():
        return None
    if calendar_id is not None and body.get("calendar") != calendar_id:
        return None
    return int(body["calendar"]), dict(body["data"])
