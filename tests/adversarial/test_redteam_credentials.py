"""Red team: Authorization headers Radicale cannot read answered 500.

Radicale splits the decoded credentials at ":" and decodes them with the request's charset without
catching anything: ``Basic`` alone, base64 of text without a colon, broken base64, or a PUT whose
Content-Type names a charset Python does not know, each answered 500 to a careless client. The
gate answers 401 with a challenge, as for wrong credentials.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import PASSWORD, Bridge

UNREADABLE = {
    "empty": ("Basic", ""),
    "no colon": ("Basic " + base64.b64encode(b"weber").decode(), ""),
    "not base64": ("Basic !!!!", ""),
    "cut base64": ("Basic Zm9vOmJhcg", ""),
    "utf-8 without colon": ("Basic " + base64.b64encode("ä".encode()).decode(), ""),
    "unknown charset": ("Basic " + base64.b64encode(f"weber:{PASSWORD}".encode()).decode(),
                        "text/calendar; charset=bogus"),
}


@pytest.mark.parametrize("method", ["PROPFIND", "PUT", "DELETE", "REPORT"])
@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_credentials_are_a_401_not_a_500(bridge: Bridge, case: str, method: str) -> None:
    bridge.add_user("Praxis", "weber")
    bridge.add_calendar("weber", "praxis")
    header, content_type = UNREADABLE[case]
    headers = {"Authorization": header}
    if content_type:
        headers["Content-Type"] = content_type
    with httpx.Client(base_url=bridge.url, timeout=30) as client:
        answer = client.request(method, "/dav/weber/praxis/", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    with bridge.client("weber") as weber:
        assert weber.request("PROPFIND", "/dav/weber/praxis/", headers={"Depth": "0"}).status_code == 207
