#!/usr/bin/env python
"""Run python-caldav's functional test suite against several CalDAV servers.

The suite is ``tests/test_caldav.py`` from the caldav sdist (pinned below).  It
is downloaded at run time with ``pip download`` into a cache directory, never
vendored.  Each selected server is started as a subprocess, the suite runs
against it in its own pytest process (JUnit XML per server), the server is
stopped, and finally the per-test results are compared with stock Radicale.

Servers:
  radicale            stock Radicale (multifilesystem storage, htpasswd auth)
  calbridge-sqlite    ``python -m bridge serve`` on SQLite
  calbridge-postgres  ``python -m bridge serve`` on a fresh PostgreSQL database

Every server gets the same feature profile (``--profile``, default ``strict``:
no server features declared; alternatively caldav's built-in ``radicale``
profile) and otherwise identical client-side settings.

Exit status: 1 iff a calbridge server fails/errors a test that Radicale passes,
or a selected server could not be started or its suite run broke down; else 0.
See docs/conformance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

CALDAV_VERSION = "3.6.0"
SUITE_FILE = "tests/test_caldav.py"
ALL_SERVERS = ("radicale", "calbridge-sqlite", "calbridge-postgres")
BASELINE = "radicale"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Name the suite sees for the server under test.  It must not be "radicale" or
# "xandikos" (those names would be merged into the suite's embedded servers) and
# it is the same for every server, so test ids are comparable across runs.
SUITE_SERVER_NAME = "Conformance"

USERNAME = "conformance"
TENANT = "conformance"

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
PG_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"

# Modules test_caldav.py (and its conftest) import, mapped to the PyPI
# distribution that provides them.  Missing ones are installed with
# ``pip install --no-deps --target`` into the cache, never into the venv.
SUITE_MODULES = {
    "pytest": None,  # must come from the environment
    "yaml": None,
    "icalendar": None,
    "vobject": "vobject",
    "proxy": "proxy.py",
    "tzlocal": "tzlocal",
    "pyfakefs": "pyfakefs",
    "pytest_timeout": "pytest-timeout",
    # The suite's pytest config sets asyncio_mode; without the plugin that
    # is an unknown option, which its "error" warning filter makes fatal.
    "pytest_asyncio": "pytest-asyncio",
}

OUTCOMES = ("passed", "failed", "error", "skipped")


def log(msg: str) -> None:
    print(f"[conformance] {msg}", file=sys.stderr, flush=True)


class StartError(Exception):
    """A server could not be started."""


class Skip(Exception):
    """A server is deliberately not tested in this run."""


# --------------------------------------------------------------------------
# Suite preparation
# --------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get("CALBRIDGE_CONFORMANCE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "calbridge-conformance"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_sdist(cache: Path) -> Path:
    """Download and unpack the caldav sdist; return the unpacked source root."""
    root = cache / f"caldav-{CALDAV_VERSION}"
    marker = root / ".calbridge-complete"
    if marker.exists():
        return root
    dl = cache / "download"
    dl.mkdir(exist_ok=True)
    archive = dl / f"caldav-{CALDAV_VERSION}.tar.gz"
    if not archive.exists():
        log(f"downloading caldav=={CALDAV_VERSION} sdist")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            f"caldav=={CALDAV_VERSION}",
            "-d",
            str(dl),
        ]
        subprocess.run(cmd, check=True, timeout=600)
    if not archive.exists():
        raise RuntimeError(f"pip download did not produce {archive}")
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(root, ignore_errors=True)
        (tmp / f"caldav-{CALDAV_VERSION}").rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not (root / SUITE_FILE).exists():
        raise RuntimeError(f"{SUITE_FILE} missing from the caldav sdist")
    # The suite's own config file would override ours; it must not exist.
    for name in ("caldav_test_servers.yaml", "caldav_test_servers.json", "conf_private.py"):
        (root / "tests" / name).unlink(missing_ok=True)
    marker.write_text(CALDAV_VERSION)
    return root


def ensure_shims(cache: Path) -> Path:
    """Packages that hide radicale/xandikos from the pytest process.

    The suite auto-registers (and some tests start) in-process Radicale and
    Xandikos servers whenever those packages are importable.  Only our own
    subprocess servers must be tested, so the pytest process gets these
    first on PYTHONPATH.  Server subprocesses never see them.  The error is
    ModuleNotFoundError so that pytest.importorskip() skips.
    """
    shims = cache / "shims"
    for mod in ("radicale", "xandikos"):
        pkg = shims / mod
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(
            f'raise ModuleNotFoundError("{mod} is hidden from the caldav suite by the calbridge '
            f'conformance harness: only subprocess servers are tested")\n'
        )
    return shims


def _probe_modules(pythonpath: list[str], modules: list[str]) -> list[str]:
    code = textwrap.dedent(f"""
        import importlib, sys
        missing = []
        for m in {modules!r}:
            try:
                importlib.import_module(m)
            except Exception:
                missing.append(m)
        print(" ".join(missing))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"module probe failed: {out.stderr.strip()[-2000:]}")
    return out.stdout.split()


def ensure_deps(cache: Path, sdist: Path) -> Path:
    """Make the suite's test-only imports available; return the extra sys.path dir."""
    deps = cache / f"pydeps-py{sys.version_info.major}{sys.version_info.minor}"
    deps.mkdir(exist_ok=True)
    missing = _probe_modules([str(deps)], list(SUITE_MODULES))
    installable = [SUITE_MODULES[m] for m in missing if SUITE_MODULES[m]]
    fatal = [m for m in missing if not SUITE_MODULES[m]]
    if fatal:
        raise RuntimeError(f"the environment lacks {fatal}; install calbridge[test]")
    if installable:
        log(f"installing suite test dependencies into {deps}: {' '.join(installable)}")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "--upgrade",
            "--target",
            str(deps),
            *installable,
        ]
        subprocess.run(cmd, check=True, timeout=600)
    # caldav itself is imported from the sdist (pytest puts its root on
    # sys.path); its runtime dependencies must be in the environment.
    still = _probe_modules([str(deps), str(sdist)], list(SUITE_MODULES) + ["caldav", "caldav.testing"])
    if still:
        raise RuntimeError(
            f"cannot import {still} for the caldav suite; "
            f"`pip install caldav=={CALDAV_VERSION}` provides caldav's own dependencies"
        )
    return deps


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - localhost only
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def server_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "PYTHON_CALDAV_", "CALDAV_", "RADICALE_"))
    }
    env.pop("PYTHONPATH", None)
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Stop a process we started (in its own session) and its children."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


class Server:
    name: str
    url: str
    username = USERNAME

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True)
        self.home = self.workdir / "home"
        self.home.mkdir()
        self.log_path = self.workdir / "server.log"
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log = None

    def spawn(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, probe_url: str, ok: tuple[int, ...], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StartError(f"process exited with status {self.proc.returncode} during startup")
            if http_status(probe_url) in ok:
                return
            time.sleep(0.25)
        raise StartError(f"{probe_url} not ready after {timeout:.0f}s")

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log:
            self._log.close()
            self._log = None


class RadicaleServer(Server):
    def start(self) -> None:
        storage = self.workdir / "collections"
        htpasswd = self.workdir / "htpasswd"
        htpasswd.write_text(f"{self.username}:{self.password}\n")
        config = self.workdir / "radicale.conf"
        config.write_text(
            textwrap.dedent(f"""\
            [server]
            hosts = 127.0.0.1:{self.port}

            [auth]
            type = htpasswd
            htpasswd_filename = {htpasswd}
            htpasswd_encryption = plain

            [rights]
            type = owner_only

            [storage]
            type = multifilesystem
            filesystem_folder = {storage}

            [web]
            type = none

            [logging]
            level = warning
        """)
        )
        cmd = [sys.executable, "-m", "radicale", "--config", str(config)]
        self.spawn(cmd, server_env(self.home), cwd=self.workdir)
        self.wait_ready(f"http://127.0.0.1:{self.port}/", ok=tuple(range(200, 500)))
        self.url = f"http://127.0.0.1:{self.port}/"


class CalbridgeServer(Server):
    def __init__(self, name: str, workdir: Path, backend: str) -> None:
        super().__init__(name, workdir)
        self.backend = backend
        self.database: str | None = None

    def _bridge(self, env: dict[str, str], *args: str, stdin: str | None = None) -> None:
        cmd = [sys.executable, "-m", "bridge", *args]
        with open(self.log_path, "ab") as out:
            out.write(f"$ python -m bridge {' '.join(args)}\n".encode())
            out.flush()
            try:
                res = subprocess.run(
                    cmd,
                    env=env,
                    cwd=REPO_ROOT,
                    input=stdin,
                    text=True,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=300,
                )
            except subprocess.TimeoutExpired as e:
                raise StartError(f"`python -m bridge {args[0]}` timed out") from e
        if res.returncode != 0:
            raise StartError(f"`python -m bridge {' '.join(args[:2])}` exited with {res.returncode}")

    def _create_database(self) -> str:
        try:
            import psycopg
        except ImportError as e:
            raise self._pg_unavailable(f"psycopg is not installed ({e})") from e
        db = f"calbridge_conf_{secrets.token_hex(6)}"
        try:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
        except psycopg.OperationalError as e:
            reason = " ".join(str(e).split())
            raise self._pg_unavailable(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {reason}") from e
        self.database = db
        return PG_URL_TEMPLATE.format(db=db)

    @staticmethod
    def _pg_unavailable(msg: str) -> Exception:
        if os.environ.get("CI", "").lower() == "true":
            return StartError(msg + " (CI=true: this is an error)")
        return Skip(msg)

    def start(self) -> None:
        data_dir = self.workdir / "data"
        data_dir.mkdir()
        if self.backend == "sqlite":
            db_url = f"sqlite:///{self.workdir / 'calbridge.sqlite3'}"
        else:
            db_url = self._create_database()
        env = server_env(self.home)
        env["BRIDGE_DATABASE_URL"] = db_url
        env["BRIDGE_DATA_DIR"] = str(data_dir)
        self._bridge(env, "migrate")
        self._bridge(env, "tenant", "create", TENANT)
        self._bridge(
            env,
            "user",
            "create",
            "--tenant",
            TENANT,
            "--login",
            self.username,
            "--email",
            f"{self.username}@example.com",
            "--role",
            "member",
            "--password-stdin",
            stdin=self.password,
        )
        self.spawn(
            [sys.executable, "-m", "bridge", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env,
            cwd=REPO_ROOT,
        )
        self.wait_ready(f"http://127.0.0.1:{self.port}/healthz", ok=(200,))
        self.url = f"http://127.0.0.1:{self.port}/dav/"

    def stop(self) -> None:
        super().stop()
        if self.database:
            try:
                import psycopg

                with psycopg.connect(PG_DSN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                self.database = None
            except Exception as e:  # noqa: BLE001 - report, don't mask the run result
                log(f"could not drop database {self.database}: {e}")


def make_server(name: str, workdir: Path) -> Server:
    if name == "radicale":
        return RadicaleServer(name, workdir)
    if name == "calbridge-sqlite":
        return CalbridgeServer(name, workdir, "sqlite")
    if name == "calbridge-postgres":
        return CalbridgeServer(name, workdir, "postgres")
    raise ValueError(name)


# --------------------------------------------------------------------------
# Running the suite
# --------------------------------------------------------------------------


@dataclass
class Result:
    outcome: str
    message: str = ""


@dataclass
class ServerRun:
    name: str
    status: str = "not run"  # ok | start-failed | skipped | run-failed
    detail: str = ""
    seconds: float = 0.0
    junit: Path | None = None
    log: Path | None = None
    results: dict[str, Result] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(OUTCOMES, 0)
        for r in self.results.values():
            c[r.outcome] += 1
        return c


def features_for(profile: str):
    # Exactly the same value for every server.  A string is resolved by
    # caldav.config.resolve_features() to a copy of
    # caldav.compatibility_hints.<profile>; [] means no features declared.
    return "radicale" if profile == "radicale" else []


def suite_env(server: Server, run_dir: Path, pythonpath: list[str], profile: str, debugmode: str) -> dict[str, str]:
    home = run_dir / "home"
    cfgdir = home / ".config" / "caldav"
    cfgdir.mkdir(parents=True)
    tmp = run_dir / "tmp"
    tmp.mkdir()
    config = {
        "test-servers": {
            SUITE_SERVER_NAME: {
                "type": "external",
                "enabled": True,
                "url": server.url,
                "username": server.username,
                "password": server.password,
                "features": features_for(profile),
            }
        }
    }
    # ~/.config/caldav/test_servers.json is one of the suite's config
    # locations; HOME is private to this run.
    (cfgdir / "test_servers.json").write_text(json.dumps(config, indent=2))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CALDAV_", "PYTHON_CALDAV_", "CALENDARING_", "JMAP_", "PYTEST_", "BRIDGE_"))
        and k
        not in ("XDG_CONFIG_HOME", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
    }
    env.update(
        {
            "HOME": str(home),
            "TMPDIR": str(tmp),  # private session-lock files
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHON_CALDAV_TEST_EMBEDDED": "0",
            "PYTHON_CALDAV_TEST_DOCKER": "0",
            "PYTHON_CALDAV_DEBUGMODE": debugmode,
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )
    return env


def run_suite(
    server: Server, run: ServerRun, sdist: Path, junit_dir: Path, pythonpath: list[str], args: argparse.Namespace
) -> None:
    run_dir = server.workdir / "suite"
    run_dir.mkdir()
    junit = junit_dir / f"{server.name}.xml"
    junit.unlink(missing_ok=True)
    out_path = junit_dir / f"{server.name}.pytest.log"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        SUITE_FILE,
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit2",
        "-o",
        "junit_logging=no",
        # silences a pytest-asyncio config warning the suite turns into an error
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        f"--timeout={args.test_timeout}",
        "-q",
        "-rfEs",
        "--color=no",
    ]
    if args.k:
        cmd += ["-k", args.k]
    env = suite_env(server, run_dir, pythonpath, args.profile, args.debugmode)
    log(f"{server.name}: running the caldav suite (log: {out_path})")
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=sdist,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=args.suite_timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc, grace=5)
            rc = None
    run.seconds = time.monotonic() - t0
    run.junit = junit
    if rc is None:
        run.status, run.detail = "run-failed", f"suite timed out after {args.suite_timeout}s"
    elif rc not in (0, 1, 5) or not junit.exists():
        run.status = "run-failed"
        run.detail = f"pytest exited with {rc}:\n{tail(out_path, 15)}"
    else:
        run.status = "ok"
    if junit.exists():
        run.results = parse_junit(junit)


def parse_junit(path: Path) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        test_id = f"{cls}::{case.get('name')}" if cls else case.get("name", "?")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = el.get("message") or (el.text or "")
                break
        message = " ".join(message.split())
        # A test that fails and then errors in teardown is reported twice.
        if test_id in results and results[test_id].outcome in ("failed", "error"):
            continue
        results[test_id] = Result(outcome, message)
    return results


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def report(runs: list[ServerRun], profile: str, msg_width: int = 200) -> int:
    lines: list[str] = []
    p = lines.append
    p("")
    p(f"caldav {CALDAV_VERSION} functional suite ({SUITE_FILE}), profile: {profile}")
    p("")
    p(f"{'server':<20} {'passed':>6} {'failed':>6} {'error':>6} {'skipped':>7} {'time':>7}  status")
    for r in runs:
        c = r.counts()
        status = r.status if not r.detail else f"{r.status}: {r.detail.splitlines()[0]}"
        if r.results:
            p(
                f"{r.name:<20} {c['passed']:>6} {c['failed']:>6} {c['error']:>6} {c['skipped']:>7} "
                f"{r.seconds:>6.0f}s  {status}"
            )
        else:
            p(f"{r.name:<20} {'-':>6} {'-':>6} {'-':>6} {'-':>7} {'-':>7}  {status}")
        if r.detail and "\n" in r.detail:
            p(textwrap.indent(r.detail.split("\n", 1)[1], "    | "))
        if r.status == "start-failed" and r.log:
            p(f"    server log ({r.log}):")
            p(textwrap.indent(tail(r.log) or "(empty)", "    | "))

    base = next((r for r in runs if r.name == BASELINE and r.results), None)
    bridges = [r for r in runs if r.name != BASELINE and r.results]
    exit_code = 0
    if any(r.status in ("start-failed", "run-failed") for r in runs):
        exit_code = 1

    regressions: list[tuple[str, str]] = []
    if bridges:
        ids = sorted({t for r in bridges for t in r.results} | (set(base.results) if base else set()))
        rows = []
        for t in ids:
            b = base.results.get(t) if base else None
            outs = [r.results.get(t) for r in bridges]
            differs = (
                any((o.outcome if o else "missing") != (b.outcome if b else "missing") for o in outs) if base else False
            )
            bad = any(o is not None and o.outcome != "passed" for o in outs)
            if not (differs or bad):
                continue
            rows.append((t, b, outs))
            for r, o in zip(bridges, outs, strict=True):
                if o is not None and o.outcome in ("failed", "error") and (b is None or b.outcome == "passed"):
                    regressions.append((r.name, t))
        p("")
        cols = ([BASELINE] if base else []) + [r.name for r in bridges]
        p(f"Tests where calbridge differs from {BASELINE} or does not pass ({len(rows)}):")
        if not base:
            p(f"  (no {BASELINE} results: every calbridge failure/error counts as a regression)")
        if rows:
            p("  " + "  ".join(f"{c:<18}" for c in cols) + "  test")
            for t, b, outs in rows:
                cells = ([b.outcome if b else "missing"] if base else []) + [
                    o.outcome if o else "missing" for o in outs
                ]
                p("  " + "  ".join(f"{c:<18}" for c in cells) + f"  {t}")
                # One line per distinct message, naming every server that gave it.
                messages: dict[str, list[str]] = {}
                if base and b is not None and b.outcome != "passed" and b.message:
                    messages.setdefault(b.message, []).append(BASELINE)
                for r, o in zip(bridges, outs, strict=True):
                    if o is not None and o.outcome != "passed" and o.message:
                        messages.setdefault(o.message, []).append(r.name)
                for msg, names in messages.items():
                    p(f"      {', '.join(names)}: {short(msg, msg_width)}")
        else:
            p("  none")
    if regressions:
        exit_code = 1
        p("")
        p(f"REGRESSIONS (calbridge fails/errors where {BASELINE} passes): {len(regressions)}")
        for name, t in regressions:
            p(f"  {name}: {t}")
    p("")
    p(f"exit status: {exit_code}")
    print("\n".join(lines), flush=True)
    return exit_code


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--servers",
        default=",".join(ALL_SERVERS),
        help=f"comma-separated subset of {','.join(ALL_SERVERS)} (default: all)",
    )
    ap.add_argument(
        "--junit-dir",
        type=Path,
        help="where to write <server>.xml and <server>.pytest.log (default: a new temporary directory, kept)",
    )
    ap.add_argument("-k", help="pytest -k expression passed to every suite run")
    ap.add_argument(
        "--profile",
        choices=("strict", "radicale"),
        default="strict",
        help="feature profile given to every server alike: 'strict' (default: no "
        "server features declared) or caldav's built-in 'radicale' profile",
    )
    ap.add_argument(
        "--debugmode",
        default="DEVELOPMENT",
        choices=("DEVELOPMENT", "PRODUCTION", "DEBUG"),
        help="PYTHON_CALDAV_DEBUGMODE for the suite (DEVELOPMENT: the library's "
        "protocol sanity checks raise instead of only logging)",
    )
    ap.add_argument("--test-timeout", type=int, default=120, help="per-test timeout (s)")
    ap.add_argument("--suite-timeout", type=int, default=1800, help="per-server suite timeout (s)")
    ap.add_argument(
        "--keep-workdir", action="store_true", help="keep server data and logs (default: kept only if something failed)"
    )
    args = ap.parse_args(argv)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.server_list) - set(ALL_SERVERS)
    if unknown or not args.server_list:
        ap.error(f"unknown server(s): {', '.join(sorted(unknown)) or '(none given)'}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = cache_dir()
    sdist = ensure_sdist(cache)
    deps = ensure_deps(cache, sdist)
    shims = ensure_shims(cache)
    pythonpath = [str(shims), str(deps)]
    junit_dir = args.junit_dir or Path(tempfile.mkdtemp(prefix="calbridge-conformance-junit-"))
    junit_dir = junit_dir.resolve()
    junit_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="calbridge-conformance-"))
    log(f"suite: {sdist / SUITE_FILE}; junit: {junit_dir}; work dir: {workdir}")

    runs: list[ServerRun] = []
    for name in args.server_list:
        run = ServerRun(name)
        runs.append(run)
        server = make_server(name, workdir)
        run.log = server.log_path
        log(f"{name}: starting")
        try:
            try:
                server.start()
            except Skip as e:
                run.status, run.detail = "skipped", str(e)
                log(f"{name}: SKIPPED - {e}")
                continue
            except Exception as e:  # noqa: BLE001 - any start-up crash is a start failure
                reason = str(e) if isinstance(e, StartError) else repr(e)
                run.status, run.detail = "start-failed", f"server failed to start: {reason}"
                log(f"{name}: server failed to start: {reason}")
                continue
            log(f"{name}: up at {server.url}")
            run_suite(server, run, sdist, junit_dir, pythonpath, args)
            if server.proc is not None and server.proc.poll() is not None:
                run.status = "run-failed"
                run.detail = (run.detail + "; " if run.detail else "") + (
                    f"server exited with status {server.proc.returncode} during the run"
                )
        finally:
            server.stop()
        c = run.counts()
        log(f"{name}: {run.status} in {run.seconds:.0f}s - " + ", ".join(f"{c[o]} {o}" for o in OUTCOMES))
    code = report(runs, args.profile)
    if args.keep_workdir or code:
        log(f"server work dirs and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
