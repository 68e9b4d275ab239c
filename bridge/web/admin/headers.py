"""Security headers on every answer of /admin, errors and static files included (pure ASGI).

The pages load nothing but their own stylesheet and script, so the policy allows only 'self'
and no inline code; no other site may frame them. Pages are private: nothing is cached.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(*form_targets: str) -> str:
    """The policy; ``form_targets`` (origins) may receive a form's redirect beside 'self': the provider's sign-in
    page after the form that starts connecting a Google or Microsoft account."""
    targets = " ".join(("'self'", *form_targets))
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"object-src 'none'; base-uri 'none'; form-action {targets}; frame-ancestors 'none'")


CONTENT_SECURITY_POLICY = content_security_policy()
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in HEADERS if name not in present]
                if not static and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
