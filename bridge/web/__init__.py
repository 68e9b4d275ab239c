"""The HTTP surfaces: /dav (Radicale behind a thin ASGI gate), /.well-known, /healthz."""
