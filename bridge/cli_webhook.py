"""``calbridge webhook set|show|remove``: where a tenant's item changes are posted (bridge.webhooks).

The signing secret is printed once, by ``set``; nothing shows it again (``set`` makes a new one).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bridge import changefeed, webhooks
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import calendars, migrate, users
from bridge.store.db import Store


def add_parsers(sub: Any) -> None:
    """Register the commands on the main parser's subparsers."""
    webhook = sub.add_parser("webhook", help="post a tenant's item changes to a URL").add_subparsers(
        metavar="ACTION", required=True)

    change = webhook.add_parser("set", help="set the tenant's webhook URL and print a new signing secret (once); "
                                            "a new webhook starts after the newest change, a replaced URL goes on "
                                            "where the old one stood")
    change.add_argument("--tenant", required=True)
    change.add_argument("--url", required=True, help="http:// or https:// URL that receives the POSTs")
    change.set_defaults(run=_set)

    show = webhook.add_parser("show", help="the tenant's webhook: URL, position and delivery state (no secret)")
    show.add_argument("--tenant", required=True)
    show.set_defaults(run=_show)

    remove = webhook.add_parser("remove", help="remove the tenant's webhook")
    remove.add_argument("--tenant", required=True)
    remove.set_defaults(run=_remove)


def _store_of(settings: Settings) -> Store:
    return migrate.open_store(settings.effective_database_url, settings.db_pool_size)


def _set(args: argparse.Namespace, settings: Settings) -> int:
    secrets = Secrets.from_settings(settings)
    store = _store_of(settings)
    with store.write() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        webhook, secret = webhooks.set_webhook(session, tenant.id, args.url, secrets)
        print(f"webhook of tenant {tenant.name!r} posts to {webhook.url}; its signing secret is shown only now:",
              file=sys.stderr)
        print(secret)
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    with store.read() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        webhook = webhooks.webhook_of(session, tenant.id)
        if webhook is None:
            raise ValueError(f"tenant {tenant.name!r} has no webhook")
        print(f"url\t{webhook.url}")
        if webhook.failures:
            when = f", next attempt {webhook.next_attempt_at:%Y-%m-%d %H:%M:%S}Z" if webhook.next_attempt_at else ""
            print(f"state\tfailing: {webhook.failures} failed deliveries in a row{when}")
        else:
            print("state\tdelivering")
        if webhook.last_status is not None or webhook.last_error:
            last = f"HTTP {webhook.last_status}" if webhook.last_status is not None else webhook.last_error
            print(f"last attempt\t{last}")
        try:
            positions = changefeed.decode_cursor(webhook.cursor)
        except changefeed.InvalidCursor:
            positions = None
        for calendar, owner in sorted(calendars.calendars_with_owner(session, tenant.id, with_removed=True),
                                      key=lambda pair: pair[0].id):
            removed = ", removed" if calendar.removed_at is not None else ""
            where = f"calendar {calendar.id} ({owner.login}/{calendar.slug}{removed})"
            if positions is None:
                print(f"{where}\tunreadable cursor: the next delivery restarts from the oldest kept change")
                continue
            try:
                done = changefeed.start(calendar, positions)
            except changefeed.CursorError as exc:
                print(f"{where}\t{exc}: the next delivery restarts from the oldest kept change")
                continue
            print(f"{where}\tdelivered through change {done} of {calendar.change_counter}")
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    store = _store_of(settings)
    with store.write() as session:
        tenant = users.tenant_by_name(session, args.tenant)
        if not webhooks.remove_webhook(session, tenant.id):
            raise ValueError(f"tenant {tenant.name!r} has no webhook")
    print(f"webhook of tenant {tenant.name!r} removed")
    return 0
