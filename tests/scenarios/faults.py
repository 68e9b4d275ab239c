"""Faults for the scenarios: an upstream that fails on the wire, and a worker killed at a chosen step.

:class:`FaultProxy` stands between the engine and the provider on loopback and passes every request
through, until told to answer a status itself (500, 401, ...): the adapter then meets a real failing
upstream, not a mocked exception. :class:`Crash` stands for a killed worker: a ``BaseException``, so
neither the engine's error handling nor its run log sees it, and nothing after the crash point runs.
:class:`CrashingAdapter` kills the worker right after a chosen adapter call succeeded upstream (after
the fetch; after a create, update or delete reached the provider and before the mapping is saved);
:class:`CrashingStore` right after the k-th write transaction committed, or inside it (rolled back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx
from sqlalchemy.orm import Session

from bridge import adapters
from bridge.adapters.base import Adapter
from bridge.store.db import Store
from tests.standins import tls

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                         "proxy-authorization", "proxy-authenticate", "content-length", "host"})


class Crash(BaseException):
    """The worker process died here (a kill, an OOM, a power cut)."""


# -- the wire ---------------------------------------------------------------------------------

@dataclass
class FaultProxy:
    """A reverse proxy to ``upstream`` (an HTTP origin); :meth:`fail` makes it answer by itself."""

    upstream: str
    url: str = ""
    status: int | None = None
    methods: frozenset[str] | None = None  # None: every method fails while ``status`` is set
    answered: int = 0  # requests answered with ``status``
    passed: int = 0  # requests passed through
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, status: int | None, *methods: str) -> None:
        """Answer ``status`` to every request (to those of ``methods`` only, when given); None: pass again."""
        with self._lock:
            self.status = status
            self.methods = frozenset(m.upper() for m in methods) or None

    def failing(self, method: str) -> int | None:
        with self._lock:
            if self.status is not None and (self.methods is None or method in self.methods):
                self.answered += 1
                return self.status
            self.passed += 1
            return None


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream.rstrip("/"))
    client = httpx.Client(timeout=30, verify=tls.client_context())  # TLS stand-ins: the tests' CA

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every method: GET, PUT, PROPFIND, REPORT, MKCALENDAR, ...
                return self._relay
            raise AttributeError(name)

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status = proxy.failing(self.command)
            if status is not None:
                self._answer(status, [("WWW-Authenticate", 'Basic realm="provider"')] if status == 401 else [],
                             b"injected failure")
                return
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            try:
                answer = client.request(self.command, proxy.upstream + self.path, headers=headers, content=body)
            except httpx.HTTPError:
                self._answer(502, [], b"upstream unreachable")
                return
            self._answer(answer.status_code, [(k, v) for k, v in answer.headers.multi_items()
                                              if k.lower() not in _HOP_BY_HOP | {"content-encoding"}],
                         answer.content)

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        client.close()


# -- a killed worker --------------------------------------------------------------------------------

CrashPoint = Literal["fetch", "create", "update", "delete"]


class CrashingAdapter:
    """The real adapter, except that the worker dies right after the ``nth`` call of ``after`` returned
    from the provider: what that call did upstream happened, nothing the engine meant to do next did."""

    def __init__(self, inner: Adapter, after: CrashPoint, nth: int = 1) -> None:
        self.inner = inner
        self.after = after
        self.left = nth

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name != self.after:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self.left -= 1
            if self.left == 0:
                raise Crash(f"after {name}")
            return result

        return call


def crashing_opener(after: CrashPoint, nth: int = 1) -> Callable[[adapters.Account],
                                                                 AbstractContextManager[Adapter]]:
    """An ``Engine(open_adapter=...)`` whose adapter is a :class:`CrashingAdapter` over the real one."""

    @contextmanager
    def open_crashing(account: adapters.Account) -> Iterator[Adapter]:
        with adapters.open_adapter(account) as adapter:
            yield CrashingAdapter(adapter, after, nth)  # type: ignore[misc]

    return open_crashing


class CrashingStore:
    """The real store, except that the worker dies at its ``at``-th write transaction: right after it
    committed (``inside=False``), or before its commit, so that it is rolled back (``inside=True``).
    ``fired`` tells whether the crash happened (a run with fewer writes ends normally)."""

    def __init__(self, inner: Store, at: int, *, inside: bool = False) -> None:
        self.inner = inner
        self.at = at
        self.inside = inside
        self.writes = 0
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.inner.write() as session:
            yield session
            self.writes += 1
            if self.inside and self.writes == self.at:
                self.fired = True
                raise Crash(f"inside write {self.at}")
        if not self.inside and self.writes == self.at:
            self.fired = True
            raise Crash(f"after write {self.at}")
