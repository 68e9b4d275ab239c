"""``calbridge connection …``, ``calbridge sync``, ``calbridge log``: connecting external calendars from the shell.

A connection is tested when it is added (the adapter lists the account's calendars), so a
wrong password or URL is reported at once, in plain words, and nothing is stored.
Passwords come from a prompt or from stdin (``--password-stdin``), never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import webbrowser
from datetime import UTC, datetime
from typing import Any

from bridge import adapters
from bridge.adapters.base import AdapterError
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import calendars, connections, migrate, users
from bridge.store.db import Store
from bridge.store.models import Calendar, Connection, SyncRun
from bridge.sync import authorize, connection_admin, mirror
from bridge.sync.engine import Engine


def add_parsers(sub: Any) -> None:
    """Register the commands on the main parser's subparsers."""
    connection = sub.add_parser("connection", help="connect calendars to external calendars").add_subparsers(
        metavar="ACTION", required=True)

    add = connection.add_parser("add", help="connect a calendar (the connection is tested first)")
    add.add_argument("calendar", help="the internal calendar as LOGIN/SLUG")
    add.add_argument("provider", choices=sorted(adapters.BUILDERS))
    add.add_argument("--url", default="", help="server or account URL (CalDAV), feed URL (ics); iCloud needs none")
    add.add_argument("--remote", default="", help="the remote calendar's URL, from 'connection calendars'")
    add.add_argument("--username", default="", help="account name (iCloud: the Apple ID)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    add.add_argument("--no-browser", action="store_true",
                     help="google, microsoft: only print the sign-in address (open it on any browser of this machine)")
    add.add_argument("--email", default="", help="exchange: the mailbox's e-mail address (autodiscover without --url)")
    add.add_argument("--auth", choices=connection_admin.EXCHANGE_AUTH, default="ntlm",
                     help="exchange: how to sign in (basic only over https; oauth: --username is the app's "
                          "client id, the password its client secret)")
    add.add_argument("--server-version", default="", help="exchange: the server's build, e.g. 15.1.2507.6 "
                                                            "(asked from the server when not given)")
    add.add_argument("--direction", choices=connections.DIRECTIONS, default="both")
    add.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help=f"a rule option ({', '.join(mirror.OPTION_KEYS)}); repeatable")
    add.set_defaults(run=_add)

    listing = connection.add_parser("list", help="list connections with their last run")
    listing.add_argument("--tenant")
    listing.set_defaults(run=_list)

    remote = connection.add_parser("calendars", help="list the calendars of a connection's account")
    remote.add_argument("id", type=int)
    remote.set_defaults(run=_calendars)

    change = connection.add_parser("set", help="change options, direction or the remote calendar")
    change.add_argument("id", type=int)
    change.add_argument("--direction", choices=connections.DIRECTIONS)
    change.add_argument("--remote", help="sync another calendar of the account (starts from a baseline)")
    change.add_argument("option", nargs="*", default=[], metavar="NAME=VALUE",
                        help=f"a rule option ({', '.join(mirror.OPTION_KEYS)})")
    change.set_defaults(run=_set)

    for name, enabled in (("enable", True), ("disable", False)):
        toggle = connection.add_parser(name, help=f"{name} the sync of a connection")
        toggle.add_argument("id", type=int)
        toggle.set_defaults(run=_toggle, enabled=enabled)

    disconnect = connection.add_parser("disconnect", help="remove a connection")
    disconnect.add_argument("id", type=int)
    disconnect.add_argument("--remove-mirrored", action="store_true",
                            help="also remove the events it mirrored (default: keep them as ordinary events)")
    disconnect.set_defaults(run=_disconnect)

    sync = sub.add_parser("sync", help="sync one connection now and print the run")
    sync.add_argument("id", type=int)
    sync.add_argument("--confirm-deletions", action="store_true", help="apply deletions a previous run held back")
    sync.set_defaults(run=_sync, reset=False)

    reset = sub.add_parser("reset-token", help="reset a connection's sync token: a full resync now, without "
                                               "duplicates and without mails")
    reset.add_argument("id", type=int)
    reset.set_defaults(run=_sync, reset=True, confirm_deletions=False)

    log = sub.add_parser("log", help="the sync log of a connection, newest first")
    log.add_argument("id", type=int)
    log.add_argument("--limit", type=int, default=20)
    log.set_defaults(run=_log)


def _store_of(settings: Settings) -> Store:
    return migrate.open_store(settings.effective_database_url, settings.db_pool_size)


# -- helpers --------------------------------------------------------------------------------------

def parse_options(pairs: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs as option values (true/false, a zone name, or null), validated."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals:
            raise ValueError(f"an option is NAME=VALUE, not {pair!r}")
        lowered = text.strip().lower()
        options[name.strip()] = {"true": True, "on": True, "false": False, "off": False,
                                 "null": None, "": None}.get(lowered, text.strip())
    return mirror.validate_options(options)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not args.username:
        return ""
    return getpass.getpass(f"password for {args.username}: ")


def _calendar(session: Any, path: str) -> Calendar:
    login, _, slug = path.strip("/").partition("/")
    calendar = calendars.calendar_by_path(session, login, slug)
    if calendar is None:
        raise ValueError(f"no calendar {path!r} (give it as LOGIN/SLUG)")
    return calendar


def _connection(session: Any, connection_id: int) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise ValueError(f"no connection {connection_id}")
    return connection


# -- commands -------------------------------------------------------------------------------------

def _add(args: argparse.Namespace, settings: Settings) -> int:
    options = connection_admin.initial_options(args.provider, parse_options(args.option))
    secrets = Secrets.from_settings(settings)
    store = _store_of(settings)
    with store.read() as session:
        _calendar(session, args.calendar)  # a typo is reported before anyone signs in
    if args.provider in authorize.OAUTH_PROVIDERS:
        account = _signed_in(args, settings)
    elif args.provider == "exchange":
        account = connection_admin.exchange_account(args.url, args.remote, args.username, _password(args),
                                                    email=args.email, auth=args.auth, version=args.server_version,
                                                    ca_file=settings.provider_ca_file or None,
                                                    login_url=settings.microsoft_login_url)
    else:
        account = connection_admin.new_account(args.provider, args.url, args.remote, args.username, _password(args),
                                               ca_file=settings.provider_ca_file or None)
    checked = connection_admin.check_new(account, hint="--remote")
    with store.write() as session:
        calendar = _calendar(session, args.calendar)
        connection = connection_admin.create(session, calendar, args.provider, checked, server_url=account.server_url,
                                             credentials=account.credentials, direction=args.direction, options=options,
                                             secrets=secrets)
        print(f"connection {connection.id}: {args.calendar} <-> {checked.remote_name or checked.remote_calendar} "
              f"({connection.direction})")
    return 0


def _signed_in(args: argparse.Namespace, settings: Settings) -> adapters.Account:
    """The OAuth authorization-code flow through a loopback redirect (bridge.sync.authorize): the account
    with the tokens the provider granted."""
    app = authorize.oauth_app(args.provider, settings)
    with authorize.loopback_redirect() as redirect:
        pending = adapters.AUTHORIZERS[args.provider](app, redirect.redirect_uri)
        print("Open this address in a browser, sign in and allow calbridge to use the calendar:", flush=True)
        print(pending.url, flush=True)
        if not args.no_browser:
            webbrowser.open(pending.url)
        try:
            credentials = pending.complete(redirect.wait())
        except AdapterError as exc:
            raise connection_admin.ConnectionProblem(f"the sign-in did not complete: {exc}") from exc
    return adapters.Account(args.provider, app.api_url, args.remote, credentials, ca_file=app.ca_file)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    with store.read() as session:
        tenant_id = users.tenant_by_name(session, args.tenant).id if args.tenant else None
        found = connection_admin.listing(session, tenant_id)
        last_runs = connection_admin.last_runs(session, [connection.id for connection, _, _ in found])
        for connection, calendar, owner in found:
            last = last_runs.get(connection.id)
            state = "disabled" if not connection.enabled else (
                "needs attention" if connection.needs_attention else "enabled")
            ran = f"{last.status} at {last.started_at:%Y-%m-%d %H:%M}Z" if last else "never run"
            print(f"{connection.id}\t{owner.login}/{calendar.slug}\t{connection.provider}\t"
                  f"{connection.remote_name or connection.remote_calendar}\t{connection.direction}\t{state}\t{ran}")
    return 0


def _calendars(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    with store.read() as session:
        account = connection_admin.account_of(_connection(session, args.id), Secrets.from_settings(settings),
                                              store=store, ca_file=settings.provider_ca_file or None)
    for remote in connection_admin.check_account(account):
        print(f"{remote.id}\t{remote.name}{'  (read-only)' if remote.read_only else ''}")
    return 0


def _set(args: argparse.Namespace, settings: Settings) -> int:
    options = parse_options(args.option)
    store = _store_of(settings)
    with store.write() as session:
        connection = _connection(session, args.id)
        if args.direction:
            connection_admin.set_direction(session, connection, args.direction)
        if args.remote:
            connections.set_account(session, connection, server_url=connection.server_url,
                                    remote_calendar=args.remote, credentials=connection.credentials)
        if options:
            change = connection_admin.change_options(session, connection, options, datetime.now(UTC),
                                                     token_max_age_days=settings.sync_token_max_age_days)
            print(f"options: {change.rewritten} events rewritten, {change.removed} removed"
                  + ("; the next run is a baseline (no mails)" if change.baseline_due else ""))
        print(f"connection {connection.id} updated")
    return 0


def _toggle(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    with store.write() as session:
        connection_admin.set_enabled(_connection(session, args.id), args.enabled)
    print(f"connection {args.id} {'enabled' if args.enabled else 'disabled'}")
    return 0


def _disconnect(args: argparse.Namespace, settings: Settings) -> int:
    removed = connection_admin.remove_connection(
        _store_of(settings), args.id, connection_admin.runner_name("cli"),
        lambda session: _connection(session, args.id), secrets=Secrets.from_settings(settings),
        ca_file=settings.provider_ca_file or None, remove_mirrored=args.remove_mirrored)
    kept = "removed" if args.remove_mirrored else "kept as ordinary events"
    print(f"connection {args.id} removed; {removed.mirrored} mirrored events {kept}")
    if removed.departing is not None and not removed.departing.stop():
        print("its push channel could not be stopped at the provider; it expires by itself", file=sys.stderr)
    return 0


def _sync(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    engine = Engine(store, settings, Secrets.from_settings(settings))
    with store.read() as session:
        _connection(session, args.id)
    bar = _progress_bar if sys.stderr.isatty() else None
    try:
        outcome = connection_admin.sync_now(store, engine, args.id, connection_admin.runner_name("cli"),
                                            datetime.now(UTC), reset=args.reset,
                                            confirm_deletions=args.confirm_deletions, progress=bar)
    finally:
        if bar is not None:
            print(file=sys.stderr)
    with store.read() as session:
        run = session.get(SyncRun, outcome.run_id)
        assert run is not None
        print(_run_line(run))
    return 0 if outcome.status in ("ok", "held") else 1


def _progress_bar(done: int, total: int, width: int = 30) -> None:
    """The applied share of a run's actions on one terminal line (fetching comes before the first call)."""
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)


def _run_line(run: SyncRun) -> str:
    took = f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else "running"
    error = f"\t{run.error_message}" if run.error_message else ""
    kind = "baseline" if run.baseline else "incremental"
    return f"{run.started_at:%Y-%m-%d %H:%M:%S}Z\t{run.trigger}\t{run.status}\t{kind}\t{took}\t{run.counts}{error}"


def _log(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    with store.read() as session:
        _connection(session, args.id)
        for run in connection_admin.runs(session, args.id, limit=args.limit):
            print(_run_line(run))
    return 0
