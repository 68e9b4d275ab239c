"""Real CalDAV servers and an ICS feed on loopback, for adapter and sync tests.

Each server is a context manager that starts on a free port, waits until it answers, and
stops (and forgets its data) afterwards: a stock Radicale 3.9 in a subprocess (htpasswd
plain auth, owner_only rights), Xandikos in a subprocess (no auth; ``--defaults`` creates
``/user/calendars/calendar/``), and a threaded http.server serving one mutable ``.ics``.
Tests make a fresh calendar per test with :meth:`DavServer.new_calendar`, so one server per
module is enough.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

RADICALE_USER = "remote"
RADICALE_PASSWORD = "secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DavServer:
    """A running CalDAV server: where it is, how to log in, and where its calendars live."""

    name: str
    url: str  # the server root, where discovery starts
    home: str  # the calendar home URL (trailing slash)
    auth: tuple[str, str] | None
    default_calendar: str

    def client(self, password: str | None = None) -> httpx.Client:
        """A client for "another client" changes made behind the adapter's back."""
        auth = self.auth if password is None or self.auth is None else (self.auth[0], password)
        return httpx.Client(auth=auth, timeout=10)

    def new_calendar(self, name: str | None = None) -> str:
        """A fresh, empty calendar collection (MKCALENDAR); its URL with a trailing slash."""
        url = f"{self.home}{name or 'cal-' + uuid.uuid4().hex[:10]}/"
        with self.client() as client:
            response = client.request("MKCALENDAR", url)
        if response.status_code != 201:
            raise RuntimeError(f"MKCALENDAR on {self.name} answered {response.status_code}")
        return url


def _wait_until_up(url: str, process: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer within {timeout} s")


@contextmanager
def _process(args: list[str], url: str, name: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run a server, its output going to ``log`` (a pipe nobody reads would fill up and stall it)."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_until_up(url, process, name, log)
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextmanager
def radicale_server(directory: Path | None = None) -> Iterator[DavServer]:
    """Stock Radicale with a user ``remote``/``secret`` and a calendar ``/remote/calendar/``."""
    with tempfile.TemporaryDirectory(prefix="radicale-", dir=directory) as tmp:
        root = Path(tmp)
        port = free_port()
        (root / "users").write_text(f"{RADICALE_USER}:{RADICALE_PASSWORD}\n")
        (root / "config").write_text(
            f"[server]\nhosts = 127.0.0.1:{port}\n"
            f"[auth]\ntype = htpasswd\nhtpasswd_filename = {root / 'users'}\nhtpasswd_encryption = plain\n"
            "delay = 0\n"
            "[rights]\ntype = owner_only\n"
            f"[storage]\nfilesystem_folder = {root / 'collections'}\n"
            "[logging]\nlevel = error\n"
        )
        url = f"http://127.0.0.1:{port}"
        with _process([sys.executable, "-m", "radicale", "-C", str(root / "config")], url + "/", "Radicale",
                      root / "radicale.log"):
            server = DavServer(name="radicale", url=url, home=f"{url}/{RADICALE_USER}/",
                               auth=(RADICALE_USER, RADICALE_PASSWORD), default_calendar="")
            server.default_calendar = server.new_calendar("calendar")
            yield server


@contextmanager
def xandikos_server(directory: Path | None = None) -> Iterator[DavServer]:
    """Xandikos with ``--defaults`` (principal ``/user/``, calendar ``/user/calendars/calendar/``)."""
    with tempfile.TemporaryDirectory(prefix="xandikos-", dir=directory) as tmp:
        root = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        xandikos = Path(sys.executable).with_name("xandikos")
        command = [str(xandikos)] if xandikos.exists() else [sys.executable, "-m", "xandikos"]
        env = {**os.environ, "XDG_DATA_HOME": str(root / "xdg")}
        args = [*command, "serve", "-d", str(root / "data"), "--defaults", "-l", "127.0.0.1", "-p", str(port),
                "--state-dir", str(root / "state"), "--no-detect-systemd"]
        with _process(args, url + "/", "Xandikos", root / "xandikos.log", env=env):
            yield DavServer(name="xandikos", url=url, home=f"{url}/user/calendars/", auth=None,
                            default_calendar=f"{url}/user/calendars/calendar/")


@contextmanager
def dav_server(name: str, directory: Path | None = None) -> Iterator[DavServer]:
    """One of the servers above by name ("radicale" or "xandikos"), for parametrised fixtures."""
    servers = {"radicale": radicale_server, "xandikos": xandikos_server}
    with servers[name](directory) as server:
        yield server


# -- ICS feed -----------------------------------------------------------------------------

@dataclass
class IcsFeed:
    """A feed on loopback: set ``body`` to change it; ``requests`` counts GETs.

    Answers with a strong ETag (hash of the body) and Last-Modified, and 304 to a matching
    If-None-Match (or If-Modified-Since when no If-None-Match is sent). ``status`` set to
    anything but 200 is answered instead, with ``headers`` (e.g. Retry-After). ``delay`` holds each
    answer back (seconds); ``most_in_flight`` is the most requests it had in progress at once.
    """

    url: str = ""
    body: bytes = b""
    modified: float = field(default_factory=time.time)
    requests: int = 0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    send_validators: bool = True
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_body(self, body: str | bytes) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.modified = time.time() + 1  # Last-Modified has one-second resolution

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@contextmanager
def ics_feed_server(body: str | bytes = b"") -> Iterator[IcsFeed]:
    feed = IcsFeed()
    feed.set_body(body)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with feed.lock:
                feed.requests += 1
                feed.in_flight += 1
                feed.most_in_flight = max(feed.most_in_flight, feed.in_flight)
            try:
                time.sleep(feed.delay)
                self._answer()
            finally:
                with feed.lock:
                    feed.in_flight -= 1

        def _answer(self) -> None:
            if feed.status != 200:
                self.send_response(feed.status)
                for name, value in feed.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            modified = email.utils.formatdate(int(feed.modified), usegmt=True)
            match = self.headers.get("If-None-Match")
            since = self.headers.get("If-Modified-Since")
            if feed.send_validators and (match == feed.etag or (match is None and since == modified)):
                self.send_response(304)
                self.send_header("ETag", feed.etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar; charset=utf-8")
            self.send_header("Content-Length", str(len(feed.body)))
            if feed.send_validators:
                self.send_header("ETag", feed.etag)
                self.send_header("Last-Modified", modified)
            self.end_headers()
            self.wfile.write(feed.body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    feed.url = f"http://127.0.0.1:{server.server_address[1]}/feed.ics"
    try:
        yield feed
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
