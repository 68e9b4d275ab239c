"""The sender's pure decisions: back-off and which SMTP answers are final (bridge.notify.sender)."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest

from bridge.notify.sender import Failure, classify, retry_delay
from bridge.settings import Settings, SettingsError


@pytest.mark.parametrize(("attempts", "seconds"), [(0, 30), (1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600),
                                                   (500, 3600)])
def test_retry_delay_doubles_to_an_hour(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("error", "expected"), [
    (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"a@example.com unknown")}),
     Failure(True, "SMTP 550 for every recipient")),
    (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no"), "b@example.com": (452, b"full")}),
     Failure(False, "SMTP 452,550 for every recipient")),
    (smtplib.SMTPSenderRefused(553, b"sender a@example.com refused", "a@example.com"),
     Failure(True, "SMTP 553: SMTPSenderRefused")),
    (smtplib.SMTPDataError(451, b"try later"), Failure(False, "SMTP 451: SMTPDataError")),
    (smtplib.SMTPDataError(554, b"spam"), Failure(True, "SMTP 554: SMTPDataError")),
    (smtplib.SMTPAuthenticationError(535, b"bad"), Failure(False, "SMTP 535: login refused")),
    (ConnectionRefusedError(111, "refused"), Failure(False, "ConnectionRefusedError")),
    (smtplib.SMTPServerDisconnected("gone"), Failure(False, "SMTPServerDisconnected")),
])
def test_classify_keeps_codes_and_drops_server_text(error: BaseException, expected: Failure) -> None:
    assert classify(error) == expected
    assert "example.com" not in classify(error).error


@pytest.mark.parametrize(("security", "port", "expected"), [("plain", 0, 25), ("starttls", 0, 587), ("tls", 0, 465),
                                                            ("tls", 2465, 2465)])
def test_the_port_follows_the_security_unless_given(security: str, port: int, expected: int) -> None:
    assert Settings(smtp_security=security, smtp_port=port).validate().effective_smtp_port == expected


@pytest.mark.parametrize("changes", [{"smtp_security": "ssl"}, {"smtp_port": 70000}])
def test_bad_smtp_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        Settings(**changes).validate()  # type: ignore[arg-type]


def test_mail_needs_a_server_and_a_sender_address() -> None:
    assert not Settings(smtp_host="mail.example").mail_enabled
    assert not Settings(mail_from="a@example.org").mail_enabled
    assert Settings(smtp_host="mail.example", mail_from="a@example.org").mail_enabled
