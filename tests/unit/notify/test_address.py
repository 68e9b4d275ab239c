"""Which address in a hand-written event is the customer's (bridge.notify.address)."""

from __future__ import annotations

import pytest

from bridge.notify.address import addresses, customer_address, valid_address

PROVIDER = "Dr.Berg@Praxis-Berg.de"
TENANT = "info@praxis-berg.de"


@pytest.mark.parametrize(("summary", "description", "expected"), [
    ("Termin kunde@example.com", None, "kunde@example.com"),
    ("Termin Müller", "Kontakt: <kunde@example.com>, Tel. 0176", "kunde@example.com"),
    ("Termin (Kunde@Example.COM).", None, "Kunde@example.com"),  # the domain is lowered, the local part kept
    ("mailto:kunde@example.com", None, "kunde@example.com"),
    ('<a href="mailto:kunde@example.com">Kunde</a>', None, "kunde@example.com"),
    ("kunde@example.com.", None, "kunde@example.com"),  # end of a sentence
    ("a.b+tag@sub.example.co.uk", None, "a.b+tag@sub.example.co.uk"),
    ("x@xn--mller-kva.de", None, "x@xn--mller-kva.de"),
    # an address inside a URL is not an address
    ("Zoom https://meet.example/j/1?user=kunde@example.com", None, None),
    ("http://kunde@host.example/path", None, None),
    ("www.example.com/a@b.example", None, None),
    ("https://meet.example/?u=a@b.example oder kunde@example.com", None, "kunde@example.com"),
    # several addresses: the first valid one that is neither the provider's nor the tenant's
    ("eins@example.com, zwei@example.com", None, "eins@example.com"),
    ("dr.berg@praxis-berg.de mit kunde@example.com", None, "kunde@example.com"),
    ("info@PRAXIS-BERG.de", "kunde@example.com", "kunde@example.com"),
    ("Termin", "eins@example.com zwei@example.com", "eins@example.com"),
    ("summary@example.com", "description@example.com", "summary@example.com"),
    # malformed: skipped, the search goes on
    ("a@@example.com", None, None),
    ("kunde@example", None, None),
    ("kunde@example.c", None, None),
    ("a..b@example.com", None, None),
    (".kunde@example.com", None, None),
    ("kunde@-example.com", None, None),
    ("kunde@example-.com", None, None),
    ("a@b@example.com", None, None),
    ("müller@example.com", None, None),  # not "ller@example.com"
    ("kunde@exämple.de", None, None),
    ("kunde@mail.exämple.de", None, None),  # not "kunde@mail.ex"
    ("@example.com", None, None),
    ("kunde@", None, None),
    ("a@@b.de und dann kunde@example.com", None, "kunde@example.com"),
    # nothing
    (None, None, None),
    ("", "", None),
    ("Dr. Berg <dr.berg@praxis-berg.de>", "info@praxis-berg.de", None),
])
def test_customer_address(summary: str | None, description: str | None, expected: str | None) -> None:
    assert customer_address(summary, description, exclude=[PROVIDER, TENANT, ""]) == expected


def test_addresses_come_in_reading_order() -> None:
    assert addresses("b@example.com, a@example.com; c@example.org") == ["b@example.com", "a@example.com",
                                                                       "c@example.org"]


@pytest.mark.parametrize("candidate", ["x" * 65 + "@example.com", "a@" + "b" * 64 + ".de",
                                       "a@" + ".".join(["b" * 60] * 5) + ".de"])
def test_overlong_addresses_are_not_valid(candidate: str) -> None:
    assert valid_address(candidate) is None
