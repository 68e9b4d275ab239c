"""Queuing a mail: called inside the transaction of the change that causes it.

The message is stored encrypted, with its Message-ID and Date fixed now, so that a resend after a
crash is the same mail. Blind-copy recipients go into the envelope only: the stored message never
has a Bcc header, so no recipient can see them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr

from sqlalchemy.orm import Session

from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import outbox


def message_id(key: str, mail_from: str) -> str:
    """The Message-ID of the mail with dedupe ``key``: the same key, the same id."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "calbridge.invalid"
    return f"<{key[:40]}@{domain}>"


def queue_mail(session: Session, secrets: Secrets, settings: Settings, *, tenant_id: int, key: str, kind: str,
               message: EmailMessage, bcc: Sequence[str] = (), now: datetime | None = None) -> bool:
    """Queue ``message`` (To and Cc as set on it, ``bcc`` in the envelope only) unless the mail of
    ``key`` is queued already, or no mail is configured; True if this call queued it."""
    if not settings.mail_enabled:
        return False
    now = now or datetime.now(UTC)
    del message["Bcc"]
    for header in ("From", "Message-ID", "Date"):
        del message[header]
    message["From"] = settings.mail_from
    message["Message-ID"] = message_id(key, settings.mail_from)
    message["Date"] = format_datetime(now)
    visible = [address for _, address in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]
    recipients = list(dict.fromkeys([*visible, *bcc]))
    if not recipients:
        raise ValueError("a mail needs at least one recipient")
    envelope = json.dumps({"from": parseaddr(settings.mail_from)[1], "to": recipients})
    return outbox.enqueue(session, tenant_id=tenant_id, key=key, kind=kind, message_id=message["Message-ID"],
                          envelope=secrets.encrypt(envelope), content=secrets.encrypt(message.as_string()), now=now)
