"""The ``calbridge`` command. With no arguments: migrate, then serve on the embedded default.

Bad input ends with a one-line message and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.exc import OperationalError

from bridge import cli_removal, cli_sync, cli_webhook
from bridge.passwords import hash_password
from bridge.settings import Settings, SettingsError, load_settings, replace
from bridge.store import calendars, migrate, tokens, users
from bridge.store.db import Store
from bridge.store.errors import StoreError

EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        command: Callable[[argparse.Namespace, Settings], int] = getattr(args, "run", _default)
        return command(args, settings)
    except (CliError, SettingsError, StoreError, ValueError) as exc:
        print(f"calbridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OperationalError as exc:
        print(f"calbridge: cannot use the database: {exc.orig}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calbridge", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $BRIDGE_CONFIG, if set)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate the database, then serve HTTP")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    worker = sub.add_parser("worker", help="sync due connections until stopped (beside or instead of the server's)")
    worker.add_argument("--concurrency", type=int, default=2, help="connections synced at once")
    worker.add_argument("--once", action="store_true", help="one round of due connections, then exit")
    worker.set_defaults(run=_worker)

    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(metavar="ACTION", required=True)
    tenant_create = tenant.add_parser("create", help="create a tenant")
    tenant_create.add_argument("name")
    tenant_create.set_defaults(run=_tenant_create)

    user = sub.add_parser("user", help="manage users").add_subparsers(metavar="ACTION", required=True)
    user_create = user.add_parser("create", help="create a user (password from a prompt, or stdin)")
    user_create.add_argument("--tenant", required=True)
    user_create.add_argument("--login", required=True)
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--role", default="member", choices=users.ROLES)
    user_create.add_argument("--language", default="de", choices=users.LANGUAGES)
    user_create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user_create.set_defaults(run=_user_create)

    calendar = sub.add_parser("calendar", help="manage calendars").add_subparsers(metavar="ACTION", required=True)
    calendar_create = calendar.add_parser("create", help="create a calendar")
    calendar_create.add_argument("--owner", required=True, help="login of the owner")
    calendar_create.add_argument("--slug", required=True, help="the calendar's name in its URL")
    calendar_create.add_argument("--name", help="display name")
    calendar_create.add_argument("--timezone", help="IANA zone (default: the default_timezone setting)")
    calendar_create.add_argument("--bcc-provider", action="store_true",
                                 help="send the owner a blind copy of every booking confirmation")
    calendar_create.set_defaults(run=_calendar_create)
    calendar_set = calendar.add_parser("set", help="change a calendar's settings")
    calendar_set.add_argument("--owner", required=True, help="login of the owner")
    calendar_set.add_argument("--slug", required=True, help="the calendar's name in its URL")
    calendar_set.add_argument("--bcc-provider", required=True, choices=("on", "off"),
                              help="a blind copy of every booking confirmation to the owner")
    calendar_set.set_defaults(run=_calendar_set)
    calendar_import = calendar.add_parser("import", help="import an .ics file (items with a known UID are replaced)")
    calendar_import.add_argument("--owner", required=True, help="login of the owner")
    calendar_import.add_argument("--slug", required=True, help="the calendar's name in its URL")
    calendar_import.add_argument("file", type=Path, help="iCalendar file, or - for stdin")
    calendar_import.set_defaults(run=_calendar_import)
    cli_removal.add_parsers(calendar, user)
    calendar_list = calendar.add_parser("list", help="list calendars with their CalDAV URLs")
    calendar_list.add_argument("--tenant")
    calendar_list.set_defaults(run=_calendar_list)

    token = sub.add_parser("token", help="manage the booking engine's API tokens").add_subparsers(
        metavar="ACTION", required=True)
    token_create = token.add_parser("create", help="create a service token for /api/v1 (printed once)")
    token_create.add_argument("--tenant", required=True)
    token_create.add_argument("--name", required=True, help="what the token is for, e.g. booking-engine")
    token_create.add_argument("--scope", default="engine", choices=tokens.SCOPES,
                              help="engine: free/busy and bookings; admin: also users and calendars")
    token_create.set_defaults(run=_token_create)
    token_list = token.add_parser("list", help="list a tenant's tokens (never the secrets)")
    token_list.add_argument("--tenant", required=True)
    token_list.set_defaults(run=_token_list)
    token_revoke = token.add_parser("revoke", help="revoke a token by its id")
    token_revoke.add_argument("--tenant", required=True)
    token_revoke.add_argument("id", type=int)
    token_revoke.set_defaults(run=_token_revoke)

    secrets = sub.add_parser("secrets", help="encryption keys of stored credentials").add_subparsers(
        metavar="ACTION", required=True)
    secrets.add_parser("new-key", help="print a new key to put in front of secret_keys").set_defaults(
        run=_secrets_new_key)
    secrets.add_parser("rotate", help="re-encrypt every stored secret with the first key").set_defaults(
        run=_secrets_rotate)
    cli_sync.add_parsers(sub)
    cli_webhook.add_parsers(sub)
    return parser


def _store(settings: Settings) -> Store:
    return Store(settings.effective_database_url, pool_size=settings.db_pool_size)


def _migrated_store(settings: Settings) -> Store:
    return migrate.open_store(settings.effective_database_url, settings.db_pool_size)


def _default(args: argparse.Namespace, settings: Settings) -> int:
    return _serve(argparse.Namespace(host=None, port=None), settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from bridge.web.app import create_app

    changes = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    settings = replace(settings, **changes)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = _migrated_store(settings)
    app = create_app(settings, store)
    print(f"calbridge: CalDAV at {settings.public_base_url}/dav/ (database: {store.url.get_backend_name()})",
          file=sys.stderr)
    from bridge.sync.service import background_worker

    with background_worker(store, settings):
        # h11, not httptools: h11 keeps the spelling of header names that some CalDAV clients match exactly.
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                    access_log=False, http="h11")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import threading

    from bridge.notify.sender import MailSender
    from bridge.secrets import Secrets
    from bridge.sync.service import engine_worker
    from bridge.webhooks import WebhookSender

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = _migrated_store(settings)
    worker = engine_worker(store, settings, concurrency=args.concurrency)
    sender = WebhookSender(store, Secrets.from_settings(settings))
    mail = MailSender.from_settings(store, settings)  # None when no SMTP server is configured
    if args.once:
        print(f"{worker.run_pending()} connections synced", file=sys.stderr)
        print(f"{sender.run_pending()} webhook pages delivered", file=sys.stderr)
        if mail is not None:
            print(f"{mail.run_pending()} mails sent", file=sys.stderr)
        sender.close()
        return 0
    print(f"calbridge: sync worker {worker.worker_id} running {args.concurrency} at once", file=sys.stderr)
    stop = threading.Event()
    threads = [threading.Thread(target=sender.serve, args=(stop,), name="calbridge-webhooks", daemon=True)]
    if mail is not None:
        threads.append(threading.Thread(target=mail.serve, args=(stop,), name="calbridge-mail", daemon=True))
    for thread in threads:
        thread.start()
    try:
        worker.serve(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sender.close()
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    print(f"database at revision {migrate.current_revision(store)}")
    store.dispose()
    return 0


def _tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    with store.write() as session:
        tenant = users.create_tenant(session, args.name)
        print(f"tenant {tenant.name!r} created")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("the passwords differ")
    if not password:
        raise CliError("no password given")
    return password


def _user_create(args: argparse.Namespace, settings: Settings) -> int:
    password_hash = hash_password(_read_password(args.password_stdin))
    store = _migrated_store(settings)
    with store.write() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        user = users.create_user(session, tenant, login=args.login, email=args.email, role=args.role,
                                 language=args.language, password_hash=password_hash)
        print(f"user {user.login!r} ({user.role}) created in tenant {tenant.name!r}")
    return 0


def _calendar_create(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    with store.write() as session:
        owner = users.user_by_login(session, args.owner)
        if owner is None:
            raise CliError(f"no user {args.owner!r}")
        props = {"D:displayname": args.name} if args.name else None
        calendar = calendars.create_calendar(session, owner, args.slug,
                                             timezone=args.timezone or settings.default_timezone, props=props,
                                             bcc_provider=args.bcc_provider)
        print(f"{settings.public_base_url}/dav/{owner.login}/{calendar.slug}/")
    return 0


def _calendar_set(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    with store.write() as session:
        owner = users.user_by_login(session, args.owner)
        calendar = calendars.calendar_of(session, owner.id, args.slug) if owner is not None else None
        if owner is None or calendar is None:
            raise CliError(f"no calendar {args.owner}/{args.slug}")
        calendars.set_bcc_provider(calendar, args.bcc_provider == "on")
        print(f"calendar {owner.login}/{calendar.slug}: bcc_provider {args.bcc_provider}")
    return 0


def _calendar_import(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.storage_plugin.importer import import_calendar

    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.file}: {exc}") from exc
    store = _migrated_store(settings)
    created, replaced = import_calendar(store, settings, args.owner, args.slug, text)
    print(f"{created} items created, {replaced} replaced")
    return 0


def _calendar_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    with store.read() as session:
        tenant_id = users.tenant_by_name(session, args.tenant).id if args.tenant else None
        for calendar, owner in calendars.calendars_with_owner(session, tenant_id):
            name = calendars.get_props(calendar).get("D:displayname", "")
            print(f"{settings.public_base_url}/dav/{owner.login}/{calendar.slug}/\t{calendar.timezone}\t{name}")
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    with store.write() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        row, secret = tokens.create_token(session, tenant, args.name, args.scope)
        print(f"token {row.id} ({row.scope}) for tenant {tenant.name!r}; it is shown only now:", file=sys.stderr)
        print(secret)
    return 0


def _token_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _migrated_store(settings)
    with store.read() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        for row in tokens.tokens_of_tenant(session, tenant.id):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            print(f"{row.id}\t{row.scope}\t{state}\t{row.name}")
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    store = _migrated_store(settings)
    with store.write() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        tokens.revoke_token(session, tenant.id, args.id, datetime.now(UTC))
        print(f"token {args.id} revoked")
    return 0


def _secrets_new_key(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.secrets import new_key

    print(new_key())
    return 0


def _secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bridge import webhooks
    from bridge.secrets import Secrets
    from bridge.store import connections, outbox

    secrets = Secrets.from_settings(settings)
    store = _migrated_store(settings)
    with store.write() as session:
        count = connections.rotate_credentials(session, secrets.rotate)
        hooks = webhooks.rotate_secrets(session, secrets.rotate)
        mails = outbox.rotate_secrets(session, secrets.rotate)
    print(f"{count} stored credentials re-encrypted with the first key")
    print(f"{hooks} webhook secrets re-encrypted with the first key")
    print(f"{mails} queued mails and kept customer addresses re-encrypted with the first key")
    return 0
