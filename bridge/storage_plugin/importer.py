"""Import an iCalendar file into a calendar, one item per UID, as a whole-collection PUT would
split it; re-importing replaces items by UID instead of duplicating them."""

from __future__ import annotations

from radicale import config as radicale_config
from radicale import item as radicale_item
from radicale.app.put import prepare

from bridge.settings import Settings
from bridge.storage_plugin.collection import SqlCollection
from bridge.storage_plugin.storage import SqlStorage
from bridge.store.db import Store

MAX_RRULE_OCCURRENCES = 10_000


class NotImportable(ValueError):
    """The file is not importable iCalendar; the message says why."""


def import_calendar(store: Store, settings: Settings, owner: str, slug: str, text: str) -> tuple[int, int]:
    """Import ``text`` into /<owner>/<slug>/ in one transaction; returns (created, replaced)."""
    try:
        components = radicale_item.read_components(text)
        prepared, _, _, _, failure = prepare(
            components, f"/{owner}/{slug}/", "text/calendar", True, False,
            max(settings.max_body_bytes, 10 * 1024 * 1024), MAX_RRULE_OCCURRENCES,
            tag="VCALENDAR", write_whole_collection=True)
        new_items = list(prepared)
    except Exception as exc:  # Radicale's parser raises anything from ValueError to vobject's errors
        raise NotImportable(f"not importable iCalendar: {exc}") from exc
    if failure:
        raise NotImportable(f"not importable iCalendar: {failure[1]}")
    storage = SqlStorage(store, settings, radicale_config.load())
    with storage.acquire_lock("w", owner, path=f"/{owner}/{slug}/"):
        collection = next(iter(storage.discover(f"/{owner}/{slug}/")), None)
        if not isinstance(collection, SqlCollection) or collection.calendar_row is None:
            raise NotImportable(f"no calendar /{owner}/{slug}/")
        return collection.upsert_by_uid(new_items)
