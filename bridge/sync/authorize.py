"""Connecting an OAuth account (Google, Microsoft): the installation's OAuth client from the settings, and a
loopback redirect that receives the provider's answer.

The flow is the one both providers document for installed apps: the user opens the authorization URL in a
browser, consents, and the provider redirects to ``http://127.0.0.1:<port>/`` where :class:`LoopbackRedirect`
is listening (RFC 8252 section 7.3: any port, plain HTTP on the loopback interface only). The admin page
will redirect to its own URL instead and hand the same :class:`~bridge.adapters.base.Authorization` what it
received. The code is redeemed with PKCE, so a redirect seen by another local process is useless without the
verifier this process holds.
"""

from __future__ import annotations

import dataclasses
import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from bridge.adapters import google, microsoft
from bridge.adapters.base import OAuthApp
from bridge.settings import Settings

OAUTH_PROVIDERS = ("google", "microsoft")
WAIT_SECONDS = 300.0


class AuthorizationProblem(ValueError):
    """The authorization cannot start or did not finish; the message says why in plain words."""


def oauth_app(provider: str, settings: Settings) -> OAuthApp:
    """The installation's OAuth client at ``provider``; refused in plain words when it is not configured."""
    if provider == "google":
        app = OAuthApp(settings.google_client_id, settings.google_client_secret, auth_url=settings.google_auth_url,
                       token_url=settings.google_token_url, api_url=settings.google_api_url)
    elif provider == "microsoft":
        app = OAuthApp(settings.microsoft_client_id, settings.microsoft_client_secret,
                       tenant=settings.microsoft_tenant, auth_url=settings.microsoft_login_url,
                       api_url=settings.microsoft_graph_url)
    else:
        raise AuthorizationProblem(f"{provider} accounts are not connected with OAuth")
    if not app.client_id:
        raise AuthorizationProblem(f"set {provider}_client_id (and its secret) in the configuration first: "
                                   f"the OAuth client registered with {provider.title()} for this installation")
    return dataclasses.replace(app, ca_file=settings.provider_ca_file or None)


def sign_in_origin(provider: str, settings: Settings) -> str:
    """Where the browser signs in (scheme and host of the authorization endpoint): the admin page's policy must
    let its sign-in form be redirected there."""
    configured = settings.google_auth_url if provider == "google" else settings.microsoft_login_url
    default = google.ENDPOINTS["auth_url"] if provider == "google" else microsoft.LOGIN_URL
    parts = urlsplit(configured or default)
    return f"{parts.scheme}://{parts.netloc}"


class LoopbackRedirect:
    """A one-shot HTTP listener on 127.0.0.1 that keeps the first redirect it receives."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._received = threading.Event()
        self._lock = threading.Lock()
        self._url = ""

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def receive(self, path: str) -> bool:
        """Keep the first redirect; False for any later one. :meth:`wait` returns after :meth:`answered`."""
        with self._lock:
            if self._url:
                return False
            self._url = self.redirect_uri.rstrip("/") + path
            return True

    def answered(self) -> None:
        """The browser has its page: the command may go on (and end, taking this listener with it)."""
        self._received.set()

    def wait(self, timeout: float = WAIT_SECONDS) -> str:
        """The full redirect URL (with ``code`` and ``state``, or ``error``) once the browser arrives."""
        if not self._received.wait(timeout):
            raise AuthorizationProblem(f"no answer from the browser within {timeout:.0f} seconds; run the command "
                                       "again and open the link it prints")
        return self._url


@contextmanager
def loopback_redirect() -> Iterator[LoopbackRedirect]:
    """Listen on a free loopback port for as long as the block runs."""
    holder: list[LoopbackRedirect] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.startswith("/favicon"):
                self.send_error(404)
                return
            first = holder[0].receive(self.path)
            text = ("calbridge received the answer; you can close this window." if first
                    else "calbridge already has an answer; you can close this window.")
            body = f"<!doctype html><title>calbridge</title><p>{html.escape(text)}</p>".encode()
            try:  # the page first: the command may end as soon as it has the answer, and the listener with it
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            finally:
                if first:
                    holder[0].answered()

        def log_message(self, format: str, *args: object) -> None:  # the URL holds the code: never logged
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(LoopbackRedirect(server))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
