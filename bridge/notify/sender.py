"""Delivery of the outbox over SMTP: claim due rows, send, record the outcome.

Delivery is at least once. SMTP has no idempotency: a sender that dies after the server accepted
a mail and before the row says so leaves its claim to run out (:data:`CLAIM_SECONDS`), and then
the mail goes again, with the Message-ID fixed at queuing, so mail clients show it once; once a
send is recorded the row is never sent again. A transient failure (server down, 4xx, TLS or login
trouble: a configuration can be fixed) backs off from 30 s, doubling to at most an hour, and gives
up only after :data:`MAX_AGE`; a permanent one (5xx for the sender, every recipient or the data)
is recorded at once. What is recorded is the SMTP code or the error's class, never the server's
text (it may quote an address) nor any content.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage

from bridge.secrets import SecretError, Secrets
from bridge.settings import Settings
from bridge.store import outbox
from bridge.store.db import Store

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
MAX_AGE = timedelta(days=5)  # a mail still not accepted after this is recorded as failed
CLAIM_SECONDS = 300  # a sender's hold on the mails of one round; then another sender may send them
ROUND_SIZE = 50
KEEP_DAYS = 90  # sent and failed rows are removed after this (see bridge.store.outbox.prune)
PRUNE_EVERY = timedelta(hours=1)
TIMEOUT_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- pure parts ------------------------------------------------------------------------------------

def retry_delay(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed attempts: 30 s, doubled per attempt, at most an hour."""
    exponent = min(max(attempts - 1, 0), 20)
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2**exponent, MAX_BACKOFF_SECONDS))


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed, as it may be recorded (no address, no server text)."""

    permanent: bool
    error: str


def classify(exc: BaseException) -> Failure:
    """Permanent for a 5xx answer to the sender, every recipient or the data; transient otherwise."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return Failure(all(code >= 500 for code in codes), "SMTP " + ",".join(map(str, codes)) + " for every recipient")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Failure(False, f"SMTP {exc.smtp_code}: login refused")
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return Failure(exc.smtp_code >= 500, f"SMTP {exc.smtp_code}: {type(exc).__name__}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return Failure(False, f"SMTP {exc.smtp_code}: {type(exc).__name__}")
    return Failure(False, type(exc).__name__)


# -- the SMTP connection ---------------------------------------------------------------------------

class SmtpTransport:
    """Opens SMTP sessions as the settings say (plain, STARTTLS or implicit TLS, login if a user is set)."""

    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.host = settings.smtp_host
        self.port = settings.effective_smtp_port
        self.security = settings.smtp_security
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.timeout = timeout

    @contextmanager
    def session(self) -> Iterator[smtplib.SMTP]:
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
            yield smtp
        finally:
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()

    def send(self, smtp: smtplib.SMTP, message: EmailMessage, sender: str, recipients: Sequence[str]) -> int:
        """Send one mail; returns how many recipients the server refused (the others got it)."""
        refused = smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))
        return len(refused)


# -- delivery --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """The outcome of one attempt: accepted (perhaps with refused recipients, noted) or a failure."""

    accepted: bool
    failure: Failure | None = None
    note: str | None = None


def deliver_due(store: Store, secrets: Secrets, transport: SmtpTransport, now: datetime, *,
                limit: int = ROUND_SIZE) -> int:
    """One round: claim up to ``limit`` due mails, send them over one SMTP session; returns how many
    the server accepted."""
    with store.write() as session:
        mails = outbox.claim_due(session, now, limit=limit, hold=timedelta(seconds=CLAIM_SECONDS),
                                 skip_locked=not store.is_sqlite)
    if not mails:
        return 0
    sent = 0
    pending = list(mails)
    try:
        with transport.session() as smtp:
            while pending:
                result = _send_one(secrets, transport, smtp, pending[0])
                _record(store, pending.pop(0), result, now)
                sent += result.accepted
    except (smtplib.SMTPException, OSError) as exc:  # the session failed: every mail not yet sent waits
        failure = Failure(False, classify(exc).error)
        log.warning("SMTP session failed (%s); %d mails wait", failure.error, len(pending))
        for mail in pending:
            _record(store, mail, Result(False, failure), now)
    return sent


def _send_one(secrets: Secrets, transport: SmtpTransport, smtp: smtplib.SMTP, mail: outbox.QueuedMail) -> Result:
    """Send one mail. Errors of the session itself (disconnected, network) propagate: the mails left
    wait for the next round."""
    try:
        envelope = json.loads(secrets.decrypt(mail.envelope))
        message = message_from_string(secrets.decrypt(mail.content), _class=EmailMessage, policy=policy.default)
    except (SecretError, ValueError):
        return Result(False, Failure(False, "the mail does not decrypt with the configured keys"))
    try:
        refused = transport.send(smtp, message, envelope["from"], envelope["to"])
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        with suppress(smtplib.SMTPException, OSError):
            smtp.rset()
        return Result(False, classify(exc))
    return Result(True, note=f"{refused} recipients refused" if refused else None)


def _record(store: Store, mail: outbox.QueuedMail, result: Result, now: datetime) -> None:
    with store.write() as session:
        failure = result.failure
        if result.accepted or failure is None:
            outbox.mark_sent(session, mail.id, now, note=result.note)
        elif failure.permanent:
            log.warning("mail %d (%s) failed for good: %s", mail.id, mail.kind, failure.error)
            outbox.mark_failed(session, mail.id, failure.error)
        elif now - mail.created_at >= MAX_AGE:
            log.warning("mail %d (%s) given up after %d attempts: %s", mail.id, mail.kind, mail.attempts + 1,
                        failure.error)
            outbox.mark_failed(session, mail.id, f"given up after {mail.attempts + 1} attempts: {failure.error}")
        else:
            log.info("mail %d (%s) waits: %s", mail.id, mail.kind, failure.error)
            outbox.mark_retry(session, mail.id, failure.error, now + retry_delay(mail.attempts + 1))


class MailSender:
    """Sends due mails every ``poll_seconds``, and at once again after a round that sent some (more may
    be waiting). Runs beside the sync worker, as the webhook sender does."""

    def __init__(self, store: Store, secrets: Secrets, transport: SmtpTransport, *, poll_seconds: float = 5.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.secrets = secrets
        self.transport = transport
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._pruned_at: datetime | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> MailSender | None:
        """The sender the settings ask for; None when no mail is configured."""
        if not settings.mail_enabled:
            return None
        return cls(store, Secrets.from_settings(settings), SmtpTransport(settings))

    def run_pending(self) -> int:
        """One round of due mails (and, once an hour, old rows removed); returns how many the server accepted."""
        now = self.clock()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            with self.store.write() as session:
                outbox.prune(session, now - timedelta(days=KEEP_DAYS))
            self._pruned_at = now
        return deliver_due(self.store, self.secrets, self.transport, now)

    def serve(self, stop: threading.Event) -> None:
        """Run rounds until ``stop`` is set; a round in progress is finished first."""
        while not stop.is_set():
            try:
                sent = self.run_pending()
            except Exception as exc:  # the database may be away for a while: keep polling
                log.error("sending due mails failed: %s", type(exc).__name__)
                sent = 0
            if sent == 0:
                stop.wait(self.poll_seconds)
