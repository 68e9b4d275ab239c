"""``calbridge calendar remove`` and ``calbridge user remove``: the shell's side of bridge.removal.

Removing a calendar or a user that holds bookings or connections says first what it ends: at a
terminal the command asks, elsewhere it stops (exit status 2) unless ``--yes`` confirms. Each
booking it ends is cancelled so that the booking engine's change feed reports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bridge import removal
from bridge.settings import Settings
from bridge.store import calendars, migrate, users
from bridge.store.errors import NotFound

EXIT_USAGE = 2
Remove = Callable[[Any, bool], removal.Removal]  # (session, confirmed) -> what was ended


def add_parsers(calendar_sub: Any, user_sub: Any) -> None:
    """Register ``remove`` under the ``calendar`` and ``user`` commands."""
    calendar_remove = calendar_sub.add_parser(
        "remove", help="remove a calendar (asks first when bookings would be cancelled or connections removed)")
    calendar_remove.add_argument("--owner", required=True, help="login of the owner")
    calendar_remove.add_argument("--slug", required=True, help="the calendar's name in its URL")
    calendar_remove.add_argument("--yes", action="store_true", help="cancel its bookings and remove its connections")
    calendar_remove.set_defaults(run=_calendar_remove)
    user_remove = user_sub.add_parser(
        "remove", help="remove a user with their calendars (asks first, as 'calendar remove' does)")
    user_remove.add_argument("--login", required=True)
    user_remove.add_argument("--yes", action="store_true", help="cancel their bookings and remove their connections")
    user_remove.set_defaults(run=_user_remove)


def _calendar_remove(args: argparse.Namespace, settings: Settings) -> int:
    def remove(session: Any, confirmed: bool) -> removal.Removal:
        owner = users.user_by_login(session, args.owner)
        calendar = calendars.calendar_of(session, owner.id, args.slug) if owner is not None else None
        if owner is None or calendar is None:
            raise NotFound("calendar", f"{args.owner}/{args.slug}")
        return removal.remove_calendar(session, calendar, owner, datetime.now(UTC), confirmed=confirmed,
                                       changes_kept_days=settings.sync_token_max_age_days,
                                       keys=removal.ChannelKeys.from_settings(settings))

    return _confirmed_removal(settings, remove, args.yes, f"calendar {args.owner}/{args.slug}")


def _user_remove(args: argparse.Namespace, settings: Settings) -> int:
    def remove(session: Any, confirmed: bool) -> removal.Removal:
        user = users.user_by_login(session, args.login)
        if user is None:
            raise NotFound("user", args.login)
        return removal.remove_user(session, user, datetime.now(UTC), confirmed=confirmed,
                                   changes_kept_days=settings.sync_token_max_age_days,
                                   keys=removal.ChannelKeys.from_settings(settings))

    return _confirmed_removal(settings, remove, args.yes, f"user {args.login}")


def _confirmed_removal(settings: Settings, remove: Remove, yes: bool, what: str) -> int:
    """Try without confirmation; if bookings or connections are at stake, ask (or stop) and try again."""
    store = migrate.open_store(settings.effective_database_url, settings.db_pool_size)
    try:
        try:
            with store.write() as session:
                done = remove(session, yes)
        except removal.ConfirmationNeeded as exc:
            if not sys.stdin.isatty():
                print(f"calbridge: {what}: {exc.consequences.describe()}; add --yes to go ahead", file=sys.stderr)
                return EXIT_USAGE
            answer = input(f"{what}: {exc.consequences.describe()}. Remove? [y/N] ")
            if answer.strip().lower() not in ("y", "yes", "j", "ja"):
                print("nothing removed")
                return 1
            with store.write() as session:
                done = remove(session, True)
    finally:
        store.dispose()
    done.stop_push_channels()
    ended = done.consequences
    print(f"{what} removed: {ended.bookings} booking(s) cancelled, {ended.connections} connection(s) removed")
    return 0
