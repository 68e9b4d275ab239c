"""A real SMTP server (aiosmtpd) on loopback for the mail tests: plain, STARTTLS or implicit TLS with
the tests' CA, optionally with login; it keeps what it accepts, parsed, and can refuse recipients."""

from __future__ import annotations

import dataclasses
import ssl
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bridge.settings import Settings
from tests.conftest import free_port
from tests.standins import tls

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@dataclasses.dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


class Inbox:
    """aiosmtpd handler: keeps every accepted mail; refuses recipients listed in ``refuse``."""

    def __init__(self) -> None:
        self.mails: list[Received] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, _class=EmailMessage, policy=policy.default)
        self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """A running aiosmtpd on loopback; ``security`` as in the settings."""

    def __init__(self, security: str = "plain", *, login: bool = False, port: int | None = None) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.security = security
        self.login = login
        context = None
        if security != "plain":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls.server_files())
        options: dict[str, Any] = {}
        if security == "tls":
            options["ssl_context"] = context
        elif security == "starttls":
            options.update(tls_context=context, require_starttls=True)
        if login:
            options.update(authenticator=_authenticate, auth_required=True,
                           auth_require_tls=security == "starttls")  # aiosmtpd does not count implicit TLS
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **options)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def settings(self, tmp_settings: Settings, **changes: Any) -> Settings:
        values: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": self.security,
                                  "mail_from": "Kalender <calendar@praxis.example>"}
        if self.login:
            values.update(smtp_username="mailer", smtp_password="s3cret")
        values.update(changes)
        return dataclasses.replace(tmp_settings, **values).validate()


class Clock:
    """A clock the test moves (back-off and claims are timed)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now
