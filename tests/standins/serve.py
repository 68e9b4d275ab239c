"""Run an ASGI stand-in on loopback for a test session: uvicorn in a thread, TLS by the tests' CA."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from tests.standins import tls


@contextmanager
def serve(app: ASGIApp, *, https: bool = True) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its origin (``https://127.0.0.1:<port>``)."""
    # The protocol named, so asyncio sets TCP_NODELAY on accepted connections (it checks sock.proto):
    # without it every small answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, object] = {}
    if https:
        chain, key = tls.server_files()
        options = {"ssl_certfile": chain, "ssl_keyfile": key}
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if https else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
