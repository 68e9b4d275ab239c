"""Google's own client libraries against the stand-in, unpatched: google-api-python-client built from the
discovery document the stand-in serves, over httplib2 trusting the tests' CA; google-auth-oauthlib's Flow
(through :func:`bridge.adapters.google.authorize`) completing the PKCE authorization-code grant; google-auth
refreshing the token. What they accept, the stand-in speaks well enough for the adapter's tests to count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_auth_httplib2
import httplib2
import httpx
import pytest
import requests
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from bridge.adapters.base import AuthExpired
from bridge.adapters.google import SCOPES, authorize
from tests.standins import tls
from tests.standins.google import CLIENT_ID, CLIENT_SECRET, RunningGoogle, google_standin

REDIRECT = "http://127.0.0.1:8765/"  # a loopback redirect, as Google documents for installed apps


_OPEN: list[httplib2.Http] = []


@pytest.fixture(scope="module")
def google() -> Iterator[RunningGoogle]:
    with google_standin() as running:
        yield running
        for http in _OPEN:  # idle keep-alive connections would hold up the server's shutdown
            http.close()


def service(google: RunningGoogle, credentials: Credentials) -> Any:
    _OPEN.append(httplib2.Http(ca_certs=tls.ca_file()))
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=_OPEN[-1])
    return build("calendar", "v3", http=http, static_discovery=False, cache_discovery=False,
                 discoveryServiceUrl=google.origin + "/discovery/v1/apis/{api}/{apiVersion}/rest")


def grant(google: RunningGoogle) -> Credentials:
    issued = google.credentials()
    return Credentials(
        token=issued["access_token"], refresh_token=issued["refresh_token"], token_uri=issued["token_uri"],
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes=list(SCOPES))


def test_the_api_client_lists_writes_syncs_and_meets_410(google: RunningGoogle) -> None:
    calendar_id = google.standin.new_calendar("Praxis")
    calendar = service(google, grant(google))

    listed = calendar.calendarList().list().execute()
    assert calendar_id in {entry["id"] for entry in listed["items"]}

    event = calendar.events().insert(calendarId=calendar_id, body={
        "summary": "Sprechstunde", "start": {"dateTime": "2026-12-07T09:00:00+01:00"},
        "end": {"dateTime": "2026-12-07T10:00:00+01:00"}}).execute()
    first = calendar.events().list(calendarId=calendar_id, timeMin="2026-12-01T00:00:00Z",
                                   timeMax="2027-01-01T00:00:00Z").execute()
    assert [item["id"] for item in first["items"]] == [event["id"]]
    token = first["nextSyncToken"]

    changed = calendar.events().update(calendarId=calendar_id, eventId=event["id"],
                                       body={**event, "summary": "Sprechstunde (verlegt)"}).execute()
    assert changed["etag"] != event["etag"]
    since = calendar.events().list(calendarId=calendar_id, syncToken=token).execute()
    assert [(item["id"], item["summary"]) for item in since["items"]] == [(event["id"], "Sprechstunde (verlegt)")]

    calendar.events().delete(calendarId=calendar_id, eventId=event["id"]).execute()
    gone = calendar.events().list(calendarId=calendar_id, syncToken=since["nextSyncToken"]).execute()
    assert [(item["id"], item["status"]) for item in gone["items"]] == [(event["id"], "cancelled")]

    with pytest.raises(HttpError) as refused:
        calendar.events().list(calendarId=calendar_id, syncToken=gone["nextSyncToken"],
                               timeMin="2026-12-01T00:00:00Z").execute()
    assert refused.value.resp.status == 400

    google.standin.expire_sync_tokens(calendar_id)
    with pytest.raises(HttpError) as expired:
        calendar.events().list(calendarId=calendar_id, syncToken=gone["nextSyncToken"]).execute()
    assert expired.value.resp.status == 410


def test_the_api_client_refreshes_an_expired_token_itself(google: RunningGoogle) -> None:
    credentials = grant(google)
    google.standin.expire_access_tokens()
    calendar = service(google, credentials)
    before = credentials.token
    calendar.calendarList().list().execute()
    assert credentials.token != before


def consent(google: RunningGoogle, url: str) -> str:
    """What the browser does: follow the consent page's redirect to the loopback address."""
    with httpx.Client(verify=tls.client_context()) as browser:
        answer = browser.get(url)
    assert answer.status_code == 302
    return answer.headers["Location"]


def test_the_oauth_flow_completes_with_pkce_and_the_token_refreshes(google: RunningGoogle) -> None:
    pending = authorize(google.oauth_app(), REDIRECT, ca_bundle=tls.ca_file())
    query = parse_qs(urlsplit(pending.url).query)
    assert pending.url.startswith(google.origin + "/o/oauth2/auth?")
    assert query["code_challenge_method"] == ["S256"] and query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"] and query["scope"] == list(SCOPES)

    credentials = pending.complete(consent(google, pending.url))
    assert set(credentials) == {"client_id", "client_secret", "refresh_token", "access_token", "expiry",
                                "token_uri"}
    assert credentials["token_uri"] == google.token_uri and credentials["refresh_token"]

    refreshed = Credentials(
        token=None, refresh_token=credentials["refresh_token"], token_uri=credentials["token_uri"],
        client_id=credentials["client_id"], client_secret=credentials["client_secret"])
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment wins over ``verify``
    session.verify = tls.ca_file()
    with session:
        refreshed.refresh(Request(session))
    assert refreshed.token and refreshed.token != credentials["access_token"]


def test_a_refused_consent_or_a_forged_state_is_auth_expired(google: RunningGoogle) -> None:
    pending = authorize(google.oauth_app(), REDIRECT, ca_bundle=tls.ca_file())
    google.standin.refuse_consent = True
    try:
        redirect = consent(google, pending.url)
    finally:
        google.standin.refuse_consent = False
    assert "error=access_denied" in redirect
    with pytest.raises(AuthExpired):
        pending.complete(redirect)

    pending = authorize(google.oauth_app(), REDIRECT, ca_bundle=tls.ca_file())
    redirect = consent(google, pending.url)
    with pytest.raises(AuthExpired):
        pending.complete(redirect.replace("state=", "state=forged"))
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    other = authorize(google.oauth_app(), REDIRECT, ca_bundle=tls.ca_file())  # another verifier: PKCE refuses
    forged = f"{REDIRECT}?state={parse_qs(urlsplit(other.url).query)['state'][0]}&code={code}"
    with pytest.raises(AuthExpired):
        other.complete(forged)


def test_the_api_client_meets_googles_refusals(google: RunningGoogle) -> None:
    """Ids, duplicates, preconditions and bodies are refused the way Google refuses them."""
    calendar_id = google.standin.new_calendar("Praxis")
    events = service(google, grant(google)).events()
    body = {"start": {"dateTime": "2026-12-07T09:00:00Z"}, "end": {"dateTime": "2026-12-07T10:00:00Z"}}

    def status(request: Any) -> int:
        with pytest.raises(HttpError) as refused:
            request.execute()
        return int(refused.value.resp.status)

    assert status(events.insert(calendarId=calendar_id, body={**body, "id": "NOT-base32hex"})) == 400
    made = events.insert(calendarId=calendar_id, body={**body, "id": "abcdef0123"}).execute()
    assert status(events.insert(calendarId=calendar_id, body={**body, "id": "abcdef0123"})) == 409
    assert status(events.insert(calendarId=calendar_id, body={**body, "colour": "red"})) == 400
    assert status(events.insert(calendarId=calendar_id, body={"start": body["start"]})) == 400
    stale = events.update(calendarId=calendar_id, eventId=made["id"], body={**body, "summary": "neu"})
    stale.headers["If-Match"] = '"0"'
    assert status(stale) == 412
    assert status(events.list(calendarId=calendar_id, syncToken="bm90IGEgdG9rZW4", showDeleted=False)) == 400
    assert status(events.list(calendarId=calendar_id, syncToken="bm90IGEgdG9rZW4")) == 410
    events.delete(calendarId=calendar_id, eventId=made["id"]).execute()
    assert status(events.delete(calendarId=calendar_id, eventId=made["id"])) == 410
    assert status(events.get(calendarId=calendar_id, eventId="nosuchevent")) == 404

    google.standin.fail_next(1, 403, reason="rateLimitExceeded", retry_after=1)
    assert status(events.get(calendarId=calendar_id, eventId=made["id"])) == 403


def test_the_stand_in_answers_500_rather_than_a_body_google_would_not_send(google: RunningGoogle) -> None:
    calendar_id = google.standin.new_calendar("Praxis")
    events = service(google, grant(google)).events()
    made = events.insert(calendarId=calendar_id, body={"start": {"date": "2026-12-24"},
                                                       "end": {"date": "2026-12-25"}}).execute()
    with google.standin.lock:  # a stand-in bug: a field the discovery document does not know
        google.standin.calendars[calendar_id].events[made["id"]]["colour"] = "red"
    with pytest.raises(HttpError) as refused:
        events.get(calendarId=calendar_id, eventId=made["id"]).execute()
    assert refused.value.resp.status == 500 and b"colour" in refused.value.content
