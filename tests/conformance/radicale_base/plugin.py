"""pytest plugin: run Radicale's own ``radicale/tests/test_base.py`` against calbridge's storage.

Loaded by ``run.py`` (never collected by calbridge's own test run: the name is not ``conftest.py``
or ``test_*.py``). Nothing of Radicale's test code lives here; the tests are imported from a
scratch checkout of Radicale given by ``--radicale-src``.

What it does
------------
* Makes ``radicale.tests`` (``BaseTest``, helpers, static files) come from the checkout while
  ``radicale`` itself stays the installed package calbridge runs on.
* Replaces ``radicale.storage.load`` so that every Application a test builds with storage type
  ``multifilesystem`` (Radicale's default) gets calbridge's ``SqlStorage`` instead, over a fresh
  migrated SQLite database in the test's temporary ``filesystem_folder``. Auth, rights, hooks and
  every other setting stay exactly as the test configured them (see README.md for why).

Modes (``--calbridge-mode``)
----------------------------
``mount``    (default) Radicale's tests put calendars at the root (``/calendar.ics/``); calbridge
             has calendars only at ``/<login>/<slug>/``. The storage is mounted under one
             principal: request path ``/X/...`` is stored as ``<mount-login>/X/...`` and the
             collections handed back to Radicale carry the request's path again.
``raw``      No path translation. A principal (user row) is created on demand when Radicale asks
             to create a one-segment collection (its principal auto-creation does so).
``baseline`` No substitution at all: Radicale's own multifilesystem, as a control for tests
             that fail because the checkout and the installed Radicale differ.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

MOUNT_LOGIN = "tester"
TENANT_NAME = "radicale-tests"
SUBSTITUTED_TYPES = ("multifilesystem", "multifilesystem_nolock")

PG_ADMIN_URL = os.environ.get("CALBRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

_state: dict[str, Any] = {"mode": "mount", "db": "sqlite", "stores": {}, "template": None, "databases": []}


# -- making radicale.tests come from the checkout ---------------------------------------------


def _install_tests_package(src: Path) -> None:
    import radicale

    tests_dir = src / "radicale" / "tests"
    if not (tests_dir / "test_base.py").is_file():
        raise pytest.UsageError(f"{tests_dir / 'test_base.py'} does not exist (--radicale-src)")
    installed = Path(radicale.__file__).parent / "tests"
    spec = importlib.util.spec_from_file_location(
        "radicale.tests", tests_dir / "__init__.py",
        submodule_search_locations=[str(tests_dir), str(installed)],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["radicale.tests"] = module
    spec.loader.exec_module(module)
    radicale.tests = module  # type: ignore[attr-defined]


# -- calbridge storage for one test ------------------------------------------------------------


def _seed(store: Any) -> None:
    """Schema, the test tenant and the mount principal."""
    from bridge.store import migrate, users

    migrate.upgrade(store)
    with store.write() as session:
        tenant = users.create_tenant(session, TENANT_NAME)
        users.create_user(session, tenant, login=MOUNT_LOGIN, email=f"{MOUNT_LOGIN}@example.org",
                          password_hash=_password_hash(), role="member", language="en")


def _template_database() -> Path:
    """A seeded SQLite database, built once per run and copied for every test."""
    if _state["template"] is None:
        from bridge.store.db import Store

        folder = Path(tempfile.mkdtemp(prefix="calbridge-rb-template-"))
        path = folder / "calbridge.sqlite3"
        store = Store(f"sqlite:///{path}")
        _seed(store)
        store.dispose()
        _state["template"] = path
    template: Path = _state["template"]
    return template


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(statement)


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _pg_database() -> str:
    """A fresh PostgreSQL database cloned from a seeded template database."""
    from bridge.store.db import Store

    if _state["template"] is None:
        template = f"calbridge_rb_tpl_{secrets.token_hex(4)}"
        _pg_admin(f'CREATE DATABASE "{template}"')
        store = Store(_pg_url(template))
        _seed(store)
        store.dispose()
        _state["template"] = template
    name = f"calbridge_rb_{secrets.token_hex(4)}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{_state["template"]}"')
    _state["databases"].append(name)
    return _pg_url(name)


def _password_hash() -> str:
    if "hash" not in _state:
        from bridge.passwords import hash_password

        _state["hash"] = hash_password("not-used-by-these-tests")
    hashed: str = _state["hash"]
    return hashed


def _store_for(folder: str) -> Any:
    """One Store per test folder, so an Application rebuilt by ``configure`` sees the same data."""
    from bridge.store.db import Store

    stores: dict[str, Any] = _state["stores"]
    if folder not in stores:
        if _state["db"] == "postgres":
            stores[folder] = Store(_pg_database())
        else:
            path = Path(folder) / "calbridge.sqlite3"
            shutil.copyfile(_template_database(), path)
            stores[folder] = Store(f"sqlite:///{path}")
    return stores[folder]


def _storage_classes() -> tuple[type, type]:
    from radicale import item as radicale_item
    from radicale import pathutils

    from bridge.storage_plugin.collection import SqlCollection
    from bridge.storage_plugin.paths import split
    from bridge.storage_plugin.storage import SqlStorage
    from bridge.store import users

    def inner(path: str | None) -> str | None:
        if path is None:
            return None
        return "/" + "/".join([MOUNT_LOGIN, *split(path)]) + ("/" if path.endswith("/") else "")

    def outer(stored: str) -> str:
        parts = stored.strip("/").split("/")
        assert parts[0] == MOUNT_LOGIN, stored
        return pathutils.sanitize_path("/".join(parts[1:])).strip("/")

    def unmount(obj: Any) -> Any:
        collection = obj.collection if isinstance(obj, radicale_item.Item) else obj
        if isinstance(collection, SqlCollection) and not getattr(collection, "_rb_unmounted", False):
            collection._path = outer(collection._path)  # the path Radicale's request used
            collection._rb_unmounted = True
        return obj

    class MountedSqlStorage(SqlStorage):  # type: ignore[misc]
        """calbridge's SqlStorage with the test's tree stored below ``/<MOUNT_LOGIN>/``."""

        @contextmanager
        def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
            for key in ("path", "to_path"):
                if kwargs.get(key) is not None:
                    kwargs[key] = inner(kwargs[key])
            with super().acquire_lock(mode, user, *args, **kwargs):
                yield

        def discover(self, path: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
            for obj in super().discover(inner(path), *args, **kwargs):
                yield unmount(obj)

        def create_collection(self, href: str, items: Any = None, props: Any = None) -> Any:
            collection, replaced, hrefs = super().create_collection(inner(href), items, props)
            for item in replaced.values():
                unmount(item)
            return unmount(collection), replaced, hrefs

    class RawSqlStorage(SqlStorage):  # type: ignore[misc]
        """calbridge's SqlStorage; a one-segment collection creates its principal's user row."""

        def create_collection(self, href: str, items: Any = None, props: Any = None) -> Any:
            parts = split(href)
            if len(parts) == 1:
                session = self.session()
                if users.user_by_login(session, parts[0]) is None:
                    tenant = users.tenant_by_name(session, TENANT_NAME)
                    users.create_user(session, tenant, login=parts[0], email="user@example.org",
                                      password_hash=_password_hash(), language="en")
                    self._local.memo.pop(("user", parts[0]), None)
            return super().create_collection(href, items, props)

    return MountedSqlStorage, RawSqlStorage


def _calbridge_storage(configuration: Any) -> Any:
    from bridge.settings import Settings

    mounted, raw = _storage_classes()
    folder = configuration.get("storage", "filesystem_folder")
    cls = mounted if _state["mode"] == "mount" else raw
    return cls(_store_for(folder), Settings(default_timezone="UTC"), configuration)


def _patch_storage_load() -> None:
    from radicale import storage

    original = storage.load

    def load(configuration: Any) -> Any:
        kind = configuration.get("storage", "type")
        if isinstance(kind, str) and kind in SUBSTITUTED_TYPES:
            return _calbridge_storage(configuration)
        return original(configuration)

    storage.load = load


# -- pytest hooks ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("calbridge")
    group.addoption("--radicale-src", default=os.environ.get("RADICALE_SRC", "/tmp/radicale-src"),
                    help="scratch checkout of Radicale holding radicale/tests/test_base.py")
    group.addoption("--calbridge-mode", choices=("mount", "raw", "baseline"), default="mount",
                    help="how calbridge's storage is substituted (see README.md)")
    group.addoption("--calbridge-db", choices=("sqlite", "postgres"), default="sqlite",
                    help="database of calbridge's store: a SQLite file per test, or a fresh PostgreSQL "
                         "database per test at $CALBRIDGE_TEST_PG (dropped afterwards)")


def pytest_configure(config: pytest.Config) -> None:
    _state["mode"] = config.getoption("--calbridge-mode")
    _state["db"] = config.getoption("--calbridge-db")
    _install_tests_package(Path(config.getoption("--radicale-src")).resolve())
    if _state["mode"] != "baseline":
        _patch_storage_load()


def pytest_report_header(config: pytest.Config) -> list[str]:
    import radicale

    return [f"calbridge storage substitution: mode={_state['mode']}, db={_state['db']}, "
            f"installed Radicale {radicale.VERSION}, tests from {config.getoption('--radicale-src')}"]


@pytest.fixture(autouse=True)
def _dispose_calbridge_stores() -> Iterator[None]:
    yield
    stores: dict[str, Any] = _state["stores"]
    for store in stores.values():
        store.dispose()
    stores.clear()
    while _state["databases"]:
        _pg_admin(f'DROP DATABASE IF EXISTS "{_state["databases"].pop()}" WITH (FORCE)')


def pytest_unconfigure(config: pytest.Config) -> None:
    template = _state.get("template")
    if template is None:
        return
    if _state["db"] == "postgres":
        _pg_admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    else:
        shutil.rmtree(Path(template).parent, ignore_errors=True)
