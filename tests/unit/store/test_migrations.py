"""The Alembic head creates exactly the schema the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge.store import migrate
from bridge.store.db import Store
from bridge.store.models import Base


def test_alembic_head_equals_the_models(store: Store) -> None:
    assert migrate.current_revision(store) == migrate.head_revision()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrating_twice_is_harmless(store: Store) -> None:
    migrate.upgrade(store)
    assert migrate.current_revision(store) == migrate.head_revision()
