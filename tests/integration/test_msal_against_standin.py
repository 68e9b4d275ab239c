"""Unpatched msal against the Graph stand-in's identity endpoints: the auth-code flow with PKCE through
``authorize()``, then a refresh that rotates the refresh token; with a client secret and with a certificate
(the stand-in verifies the client assertion's signature)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bridge.adapters.base import AuthExpired, OAuthApp
from bridge.adapters.microsoft import SCOPES, authorize
from tests.standins import tls
from tests.standins.microsoft import GraphStandIn, app_of
from tests.standins.serve import serve

REDIRECT = "https://bridge.example/connect/microsoft"


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[GraphStandIn, str]]:
    fake = GraphStandIn()
    fake.register_client("secret-app", secret="s3cret")
    with serve(app_of(fake)) as origin:
        yield fake, origin


def certificate() -> tuple[str, str, bytes]:
    """(private key PEM, SHA-1 thumbprint hex, certificate PEM) of a fresh self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "calbridge test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324 (x5t)
    return pem, thumbprint, cert.public_bytes(serialization.Encoding.PEM)


def consent(url: str) -> str:
    """The user's browser: the stand-in consents at once and redirects; the redirect URL."""
    answer = httpx.get(url, verify=tls.client_context(), follow_redirects=False)
    assert answer.status_code == 302
    return answer.headers["Location"]


def refresh(client_id: str, credential: Any, authority: str, token: str) -> dict[str, Any]:
    session = requests.Session()
    session.verify = tls.ca_file()
    app = msal.ConfidentialClientApplication(client_id, client_credential=credential, authority=authority,
                                             instance_discovery=False, http_client=session)
    return dict(app.acquire_token_by_refresh_token(token, scopes=SCOPES))


@pytest.mark.parametrize("kind", ["secret", "certificate"])
def test_the_auth_code_flow_with_pkce_then_a_rotating_refresh(standin: tuple[GraphStandIn, str], kind: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake, origin = standin
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert: dict[str, str] | None = None
    if kind == "certificate":
        pem, thumbprint, cert_pem = certificate()
        fake.register_client("cert-app", certificate_pem=cert_pem)
        app, cert = OAuthApp(client_id="cert-app", tenant="organizations", auth_url=origin), \
            {"private_key": pem, "thumbprint": thumbprint}
    else:
        app = OAuthApp(client_id="secret-app", client_secret="s3cret", tenant="organizations", auth_url=origin)
    pending = authorize(app, REDIRECT, certificate=cert, verify=tls.ca_file())
    assert pending.url.startswith(f"{origin}/organizations/oauth2/v2.0/authorize?")
    assert "code_challenge_method=S256" in pending.url
    credentials = pending.complete(consent(pending.url))
    assert credentials["authority"] == f"{origin}/organizations"
    assert credentials["access_token"] and credentials["refresh_token"]
    assert datetime.fromisoformat(credentials["expires_at"].replace("Z", "+00:00")) > datetime.now(UTC)
    assert ("certificate" in credentials) == (kind == "certificate")

    credential: Any = cert if cert is not None else "s3cret"
    renewed = refresh(app.client_id, credential, credentials["authority"], credentials["refresh_token"])
    assert renewed["refresh_token"] != credentials["refresh_token"]
    assert not fake.refresh_token_valid(credentials["refresh_token"])  # rotated: the old one is spent
    reused = refresh(app.client_id, credential, credentials["authority"], credentials["refresh_token"])
    assert reused.get("error") == "invalid_grant"


def test_a_refused_consent_or_a_wrong_secret_is_auth_expired(standin: tuple[GraphStandIn, str]) -> None:
    fake, origin = standin
    fake.refuse_consent = True
    try:
        pending = authorize(OAuthApp(client_id="secret-app", client_secret="s3cret", auth_url=origin), REDIRECT,
                            verify=tls.ca_file())
        with pytest.raises(AuthExpired, match="access_denied"):
            pending.complete(consent(pending.url))
    finally:
        fake.refuse_consent = False
    pending = authorize(OAuthApp(client_id="secret-app", client_secret="wrong", auth_url=origin), REDIRECT,
                        verify=tls.ca_file())
    with pytest.raises(AuthExpired, match="invalid_client"):
        pending.complete(consent(pending.url))
