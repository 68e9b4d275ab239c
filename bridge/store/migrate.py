"""Apply Alembic migrations programmatically (on start and by ``calbridge migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bridge.store.db import Store

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(store: Store) -> None:
    """Bring the schema to head; safe to run on every start."""
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def open_store(database_url: str, pool_size: int) -> Store:
    """A store whose schema is at head: what every command of the CLI starts with."""
    store = Store(database_url, pool_size=pool_size)
    upgrade(store)
    return store
